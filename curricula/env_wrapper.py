"""A curriculum over one Gymnasium env: pick each episode's level before ``reset``, learn from its end.

The level goes to the env through ``env.unwrapped.set_level`` right before every reset (never through
reset options), and the episode's outcome is recorded from ``info["success"]`` when it terminates or
truncates. The wrapper never moves the curriculum's clock: whoever owns the training loop calls
``wrapper.curriculum.advance()``. Everything runs on the host (one env), with the same schedule code as
the vector wrapper.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch

from curricula.core import Curriculum, CurriculumReporting
from curricula.schedules import Schedule
from envs.common.task import Task


class CurriculumWrapper(CurriculumReporting, gym.Wrapper):
    """Sets the level of each episode of ``env`` from ``schedule``; logs a line when the level moves.

    ``log(writer, step)`` writes the TensorBoard scalars and level histogram; ``state_dict()`` /
    ``load_state_dict()`` resume the schedule.
    """

    def __init__(self, env: gym.Env, curriculum: Curriculum | Schedule, seed: int | None = None):
        super().__init__(env)
        task = getattr(env.unwrapped, "task", None)
        if not isinstance(task, Task) or not callable(getattr(env.unwrapped, "set_level", None)):
            raise TypeError(
                f"CurriculumWrapper needs a MindGym env with .task and .set_level(level); "
                f"{type(env.unwrapped).__name__} lacks one of them."
            )
        self.curriculum = Curriculum.ensure(curriculum, "cpu", seed, task.ladder.names)
        self.schedule = self.curriculum.schedule
        self.playing = int(task.level_index)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Draw this episode's level from the curriculum, set it on the env, then reset."""
        self.playing = int(self.curriculum.draw(1)[0])
        self.env.unwrapped.set_level(self.playing)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            if "success" not in info:
                raise KeyError(
                    f"{type(self.env.unwrapped).__name__} must report info['success'] at episode end."
                )
            self.curriculum.record(
                torch.tensor([self.playing]),
                torch.tensor([bool(info["success"])]),
                torch.ones(1, dtype=torch.bool),
            )
            self.curriculum.report_level_change()
        return obs, reward, terminated, truncated, info

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the curriculum; the next reset draws its level from the restored state."""
        self.curriculum.load_state_dict(state)
