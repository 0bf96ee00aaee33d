"""Curricula for Stable-Baselines3: a ``VecEnvWrapper`` that sets levels and a callback that logs them.

``CurriculumVecEnv`` wraps any SB3 ``VecEnv`` of a MindGym task: a ``DummyVecEnv``/``SubprocVecEnv`` of
single envs or ``envs.common.sb3.SB3VecEnvAdapter`` over a native vector env. At each episode end it
reads ``infos[i]["is_success"]`` (or ``"success"``) and ``infos[i]["level"]``, records them into the
curriculum and sends the sub-env's next level with ``env_method("set_level", level, indices=...)``.
``CurriculumCallback`` advances the curriculum's clock in SB3's timesteps. SB3 resets a
finished sub-env inside the same step, so the new level applies from the episode after that one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from curricula.core import Curriculum, CurriculumReporting
from curricula.reporting import record_sb3
from curricula.schedules import Schedule
from envs.common.task import Task


class CurriculumVecEnv(CurriculumReporting, VecEnvWrapper):
    """Per-sub-env levels from ``schedule`` for an SB3 ``VecEnv``; statistics on the host (SB3 is NumPy)."""

    def __init__(self, venv: VecEnv, curriculum: Curriculum | Schedule, seed: int | None = None):
        super().__init__(venv)
        task = venv.get_attr("task", indices=[0])[0]
        if not isinstance(task, Task):
            raise TypeError(
                f"CurriculumVecEnv needs sub-envs with a MindGym Task at .task, got {type(task).__name__}."
            )
        self.level_names = task.ladder.names
        self.curriculum = Curriculum.ensure(curriculum, "cpu", seed, self.level_names)
        self.schedule = self.curriculum.schedule
        self.next_levels = self.curriculum.draw(self.num_envs)
        self._send(np.arange(self.num_envs))

    def reset(self) -> VecEnvObs:
        """Draw a level for every sub-env from the curriculum, then reset."""
        self.next_levels = self.curriculum.draw(self.num_envs)
        self._send(np.arange(self.num_envs))
        return self.venv.reset()

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        finished = np.flatnonzero(dones)
        levels = np.zeros(self.num_envs, dtype=np.int64)
        success = np.zeros(self.num_envs, dtype=bool)
        for i in finished:
            levels[i], success[i] = self._outcome(int(i), infos[i])
        done = torch.from_numpy(dones.astype(bool))
        self.curriculum.record(torch.from_numpy(levels), torch.from_numpy(success), done)
        self.next_levels = torch.where(done, self.curriculum.draw(self.num_envs), self.next_levels)
        if finished.size:
            self._send(finished)
        return obs, rewards, dones, infos

    def _outcome(self, i: int, info: dict[str, Any]) -> tuple[int, bool]:
        success = info.get("is_success", info.get("success"))
        if success is None or "level" not in info:
            raise KeyError(
                f"Sub-env {i} ended an episode without 'is_success'/'success' and 'level' in its info; "
                "MindGym envs report both at episode end."
            )
        level = info["level"]
        index = self.level_names.index(str(level)) if isinstance(level, str | np.str_) else int(level)
        return index, bool(success)

    def _send(self, ids: np.ndarray) -> None:
        """One ``env_method("set_level")`` call per distinct level among the sub-envs ``ids``."""
        groups: dict[int, list[int]] = defaultdict(list)
        for i, level in zip(ids.tolist(), self.next_levels[ids].tolist()):
            groups[level].append(i)
        for level, indices in groups.items():
            self.venv.env_method("set_level", level, indices=indices)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the curriculum; the next ``reset`` draws every sub-env's level from the restored state."""
        self.curriculum.load_state_dict(state)


def find_curriculum(env: Any) -> Curriculum:
    """The Curriculum of the first curriculum wrapper in a chain of SB3 VecEnv wrappers."""
    current = env
    while current is not None:
        if isinstance(getattr(current, "curriculum", None), Curriculum):
            return current.curriculum
        current = getattr(current, "venv", None)
    raise ValueError(
        f"No curriculum wrapper found in {type(env).__name__}; wrap the VecEnv with "
        "curricula.CurriculumVecEnv(venv, schedule) before creating the model."
    )


class CurriculumCallback(BaseCallback):
    """The curriculum's clock under SB3, plus its logging.

    SB3 owns the training loop, so this callback is the one thing that advances the curriculum: on every
    step by the timesteps SB3 counted since the last call (``model.num_timesteps``, i.e. env steps summed
    over sub-envs), so staged boundaries are in SB3's timesteps. Every ``log_every`` timesteps it writes
    scalars and the level histogram to SB3's logger and logs level changes.
    """

    def __init__(self, log_every: int = 1000, verbose: int = 0):
        super().__init__(verbose)
        if not isinstance(log_every, int) or log_every < 1:
            raise ValueError(f"log_every must be a positive int (environment steps), got {log_every!r}.")
        self.log_every = log_every
        self._last = 0

    def _on_training_start(self) -> None:
        self.curriculum = find_curriculum(self.training_env)

    def _on_step(self) -> bool:
        self.curriculum.advance(self.num_timesteps - self.curriculum.steps)
        if self.num_timesteps - self._last >= self.log_every:
            self._last = self.num_timesteps
            summary = self.curriculum.summary()
            self.curriculum.report_level_change(self.num_timesteps, summary)
            record_sb3(self.logger, summary)
        return True
