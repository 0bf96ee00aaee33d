"""Present a native MindGym TorchVectorEnv as a Stable-Baselines3 VecEnv.

SB3 works on NumPy and expects same-step autoreset with ``terminal_observation`` in each finished
sub-env's info, so the adapter switches the native env to SAME_STEP and copies one batch to the host per
step (the only copy). ``action_masks()`` is forwarded for sb3-contrib's MaskablePPO.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from envs.common.vector import TorchVectorEnv, to_numpy


class SB3VecEnvAdapter(VecEnv):
    """SB3 ``VecEnv`` over a native ``TorchVectorEnv`` (any device)."""

    def __init__(self, env: TorchVectorEnv):
        if not isinstance(env, TorchVectorEnv):
            raise TypeError(f"SB3VecEnvAdapter wraps a MindGym TorchVectorEnv, got {type(env).__name__}.")
        env.set_autoreset_mode(AutoresetMode.SAME_STEP)
        env.numpy = False  # the adapter does its own, single, host copy
        self.env = env
        self._actions: torch.Tensor | None = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    def reset(self) -> Any:
        seed = self._seeds[0]
        obs, _info = self.env.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        obs = to_numpy(obs)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = torch.as_tensor(np.asarray(actions).reshape(self.num_envs).astype(np.int64))

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        done = terminated | truncated
        done_np = done.cpu().numpy()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        finished = np.flatnonzero(done_np)
        if finished.size:
            rows = torch.as_tensor(finished, device=self.env.device)
            final_obs = to_numpy(_take(info["final_obs"], rows))
            final_info = to_numpy({k: v[rows] for k, v in info["final_info"].items() if _is_batched(v, self)})
            timeouts = (truncated & ~terminated)[rows].cpu().numpy()
            for j, i in enumerate(finished):
                entry = infos[i]
                entry["terminal_observation"] = _row(final_obs, j)
                entry["TimeLimit.truncated"] = bool(timeouts[j])
                entry["is_success"] = bool(final_info["success"][j])
                for key, value in final_info.items():
                    entry.setdefault(key, value[j])
        return to_numpy(obs), reward.cpu().numpy().astype(np.float32), done_np, infos

    def action_masks(self) -> np.ndarray:
        """Legal-action masks (num_envs, n) for MaskablePPO; the native env must define ``action_masks``."""
        if not hasattr(self.env, "action_masks"):
            raise AttributeError(f"{type(self.env).__name__} has no action masks.")
        return to_numpy(self.env.action_masks())

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if attr_name == "level":
            self.env.set_level(value, env_ids=None if indices is None else self._indices(indices))
        else:
            setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        """Call a method of the native env; ``set_level`` honours ``indices`` (one call for all of them)."""
        selected = self._indices(indices)
        if method_name == "set_level":
            self.env.set_level(*args, env_ids=None if indices is None else selected, **kwargs)
            return [None] * len(selected)
        if method_name == "action_masks":  # sb3-contrib stacks one mask per sub-env
            return list(self.action_masks()[np.asarray(selected)])
        result = getattr(self.env, method_name)(*args, **kwargs)
        return [result] * len(selected)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)


def _is_batched(value: Any, adapter: SB3VecEnvAdapter) -> bool:
    return isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == adapter.num_envs


def _take(obs: Any, rows: torch.Tensor) -> Any:
    return {k: v[rows] for k, v in obs.items()} if isinstance(obs, dict) else obs[rows]


def _row(obs: Any, j: int) -> Any:
    return {k: v[j] for k, v in obs.items()} if isinstance(obs, dict) else obs[j]
