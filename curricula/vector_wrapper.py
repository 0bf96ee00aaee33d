"""A curriculum over a vector env: MindGym's native TorchVectorEnv (any device) or a Gymnasium vector env.

On a native env the per-env levels and success statistics live in tensors on the env's device and each
``step`` updates them with tensor ops: no ``.item()``, no ``bool(tensor)``, no ``nonzero``. ``reset``
draws a level for every sub-env; each ``step`` records the episodes that ended into the curriculum and
draws their next levels, sent with ``env.set_level(LongTensor)``, which applies at each sub-env's next
reset (with next-step autoreset, the very next episode; with same-step autoreset, which has already
reset the sub-env, the episode after it). The env's own per-sub-env level tensor is the one place a
level lives. The wrapper never moves the curriculum's clock: the training loop does. Counters reach the
host only in :meth:`summary` and :meth:`log`.

A Gymnasium ``SyncVectorEnv`` of MindGym single envs works on the host: each sub-env whose episode
ended gets its next level through ``sub_env.unwrapped.set_level``. ``AsyncVectorEnv`` is refused: its
``call`` sends the same arguments to every sub-env, so it cannot give sub-envs different levels.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from curricula.core import Curriculum, CurriculumReporting
from curricula.schedules import Schedule
from envs.common.task import Task
from envs.common.vector import TorchVectorEnv


class CurriculumVectorWrapper(CurriculumReporting, gym.vector.VectorWrapper):
    """Choose each sub-env's level from ``curriculum`` and record how its episodes end.

    ``curriculum`` is the run's :class:`Curriculum` (shared with the sampler and evaluation), or a bare
    schedule, which gets a curriculum of its own (seeded with ``seed``). ``log(writer, step)`` writes
    TensorBoard scalars (current level, success rate per level, knobs) and a level histogram, and logs a
    line when the schedule's level changed since the last call.
    """

    def __init__(
        self, env: gym.vector.VectorEnv, curriculum: Curriculum | Schedule, seed: int | None = None
    ):
        if not isinstance(env, gym.vector.VectorEnv):
            raise TypeError(
                f"CurriculumVectorWrapper wraps a gymnasium VectorEnv, got {type(env).__name__}; "
                "wrap a single env with curricula.CurriculumWrapper."
            )
        super().__init__(env)
        base = env.unwrapped
        self.native = isinstance(base, TorchVectorEnv)
        if not self.native and not isinstance(base, SyncVectorEnv):
            raise TypeError(
                f"CurriculumVectorWrapper cannot give sub-envs of {type(base).__name__} different levels; "
                "use MindGym's native vector env (gymnasium.make_vec(..., vectorization_mode="
                "'vector_entry_point')) or gymnasium.vector.SyncVectorEnv."
            )
        task = base.task if self.native else _sub_env_task(base)
        device = base.device if self.native else torch.device("cpu")
        self.curriculum = Curriculum.ensure(curriculum, device, seed, task.ladder.names)
        self.schedule = self.curriculum.schedule
        self.device = self.curriculum.device
        self._ladder_names = task.ladder.names
        self._next_levels = self.curriculum.draw(self.num_envs)
        self._apply(done=None)

    # ----------------------------------------------------------------- Gymnasium vector API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, Any]:
        """Draw a level for every sub-env from the curriculum, then reset the env."""
        self._next_levels = self.curriculum.draw(self.num_envs)
        self._apply(done=None)
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        playing = self.env.unwrapped.level_ids if self.native else None
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if self.native:
            levels, success, done = self._native_outcomes(playing, terminated, truncated, info)
        else:
            levels, success, done = self._host_outcomes(terminated, truncated, info)
        self.curriculum.record(levels, success, done)
        drawn = self.curriculum.draw(self.num_envs)
        self._next_levels = torch.where(done.to(self.device), drawn, self._next_levels)
        self._apply(done)
        return obs, reward, terminated, truncated, info

    # ----------------------------------------------------------------- curriculum API
    @property
    def levels(self) -> torch.Tensor:
        """The level each sub-env plays next (on the curriculum's device)."""
        return self._next_levels

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the curriculum; the next ``reset`` draws every sub-env's level from the restored state."""
        self.curriculum.load_state_dict(state)

    # ----------------------------------------------------------------- helpers
    def _native_outcomes(
        self, playing: torch.Tensor, terminated: Any, truncated: Any, info: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Outcomes as device tensors; ``playing`` is each sub-env's level during this step."""
        same_step = self.env.unwrapped.autoreset_mode is AutoresetMode.SAME_STEP
        source = info["final_info"] if same_step else info
        if "success" not in source:
            raise KeyError(
                f"{type(self.env.unwrapped).__name__} must report info['success'] (bool per sub-env)."
            )
        done = self._tensor(terminated) | self._tensor(truncated)
        return playing, self._tensor(source["success"]).bool(), done

    def _host_outcomes(
        self, terminated: Any, truncated: Any, info: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Outcomes of a Gymnasium vector env (NumPy infos with ``_key`` masks)."""
        done = np.logical_or(terminated, truncated)
        same_step = self.env.metadata.get("autoreset_mode") is AutoresetMode.SAME_STEP
        source = info.get("final_info", {}) if same_step else info
        levels = np.zeros(self.num_envs, dtype=np.int64)
        success = np.zeros(self.num_envs, dtype=bool)
        for i in np.flatnonzero(done):
            if not (source.get("_success", done)[i] and source.get("_level", done)[i]):
                raise KeyError(
                    f"Sub-env {i} ended an episode without info['success'] and info['level']; MindGym "
                    "single envs report both at episode end."
                )
            levels[i] = self._level_index(source["level"][i])
            success[i] = bool(source["success"][i])
        return torch.from_numpy(levels), torch.from_numpy(success), torch.from_numpy(done)

    def _level_index(self, level: Any) -> int:
        if isinstance(level, str | np.str_):
            return self._ladder_names.index(str(level))
        return int(level)

    def _apply(self, done: torch.Tensor | None) -> None:
        """Send the next levels to the env (all of them, or the sub-envs whose episode ended)."""
        base = self.env.unwrapped
        if self.native:
            base.set_level(self._next_levels.to(base.device))
            return
        ids = range(self.num_envs) if done is None else np.flatnonzero(done.cpu().numpy())
        for i in ids:
            base.envs[int(i)].unwrapped.set_level(int(self._next_levels[i]))

    def _tensor(self, value: Any) -> torch.Tensor:
        return torch.as_tensor(value, device=self.device)


def _sub_env_task(base: gym.vector.VectorEnv) -> Task:
    tasks = base.get_attr("task")
    task = tasks[0] if isinstance(tasks, list | tuple) else tasks
    if not isinstance(task, Task):
        raise TypeError(
            f"The sub-envs of {type(base).__name__} have no MindGym Task at .task; the curriculum needs "
            "one to know the level ladder."
        )
    return task
