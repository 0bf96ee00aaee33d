"""TorchRL over MindGym's native vector envs: GymWrapper, plus a fix for TorchRL's same-step final_obs reader.

Importing this module needs torchrl (the tests that use it call ``pytest.importorskip("torchrl")`` first).

``GymWrapper(gym.make_vec(..., vectorization_mode="vector_entry_point", autoreset_mode="disabled"))`` works
as it is for every id and observation mode: TorchRL then resets finished sub-envs itself through
``reset_mask``, and this is the mode TorchRL prefers. Under ``autoreset_mode="same_step"`` GymWrapper reads
each step's ``info["final_obs"]`` with ``torchrl.envs.libs.gym.terminal_obs_reader``, which (torchrl 0.14.1)
mishandles two kinds of observation space, whatever env produces them (gymnasium's own
``FrozenLake-v1`` under ``SyncVectorEnv`` fails the same way):

- ``Dict`` spaces (recall ``sequence``, maze ``tokens``, TextQuality): it looks each observation key up among
  the entries of ``final_info`` instead of in ``final_obs``, finds nothing and leaves zeros, so the final
  ``length`` is 0, outside its ``Box(1, T)``;
- ``Discrete`` spaces (recall ``stream``) with the default one-hot encoding: it writes the raw token id into
  every slot of the one-hot row.

``same_step_env`` builds the same GymWrapper with a reader that fixes both (``FinalObsReader``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch
from torchrl.data import OneHot
from torchrl.envs import GymWrapper, TransformedEnv
from torchrl.envs.gym_like import default_info_dict_reader
from torchrl.envs.libs.gym import terminal_obs_reader
from torchrl.envs.transforms import VecGymEnvTransform

import envs  # noqa: F401  (registers mindgym/*)

FINAL_KEYS = ("final_obs", "final_info", "_final_obs", "_final_info")


class FinalObsReader(terminal_obs_reader):
    """TorchRL's same-step reader, reading a Dict observation by key and a Discrete one in its encoding.

    It also writes a whole batch at once where the stock reader loops over sub-envs in Python, and at a
    reset (no ``final_obs``) fills the final entries with the observation rather than with zeros, which lie
    outside spaces such as ``length``'s ``Box(1, T)`` or a one-hot encoding.
    """

    def __call__(self, info_dict: Mapping[str, Any], tensordict: Any) -> Any:
        info = {k: v for k, v in info_dict.items() if k not in FINAL_KEYS}
        default_info_dict_reader.__call__(self, info, tensordict)  # the step's own info entries
        if not self._final_validated:
            self.info_spec[self.name] = self._obs_spec.update(self.info_spec)
            self._final_validated = True
        specs = self.info_spec[self.name]
        final_obs = info_dict.get("final_obs")
        if final_obs is None:  # a reset: nothing ended, so the final entries repeat what was just read
            final = {key: tensordict.get(key) for key, _ in specs.items()}
        else:
            observation = dict(final_obs) if isinstance(final_obs, Mapping) else {"observation": final_obs}
            # an info entry named like an observation key wins, as it does in TorchRL's specs
            final = {**observation, **dict(info_dict.get("final_info") or {})}
        for key, spec in specs.items():
            value = final.get(key)
            if value is None:
                value = spec.zero()
            else:
                value = torch.as_tensor(value, device=spec.device)
                if isinstance(spec, OneHot) and value.shape != spec.shape:
                    value = torch.nn.functional.one_hot(value.long(), spec.space.n)
                value = value.to(spec.dtype).reshape(spec.shape)
            tensordict.set((self.name, key), value)
        return tensordict


def make_vec(env_id: str, num_envs: int, autoreset_mode: str, **kwargs: Any) -> gym.vector.VectorEnv:
    """The native vector env of ``env_id`` (``device="cpu"`` unless given)."""
    kwargs.setdefault("device", "cpu")
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode=autoreset_mode,
        **kwargs,
    )


def same_step_env(vec: gym.vector.VectorEnv, **wrapper_kwargs: Any) -> TransformedEnv:
    """GymWrapper over a same-step MindGym vector env, reading its final observations with ``FinalObsReader``.

    GymWrapper registers the stock reader while it is built, and checks it there; so the env is wrapped in
    DISABLED mode (no reader), switched to SAME_STEP, and given the fixed reader and TorchRL's
    ``VecGymEnvTransform`` by hand: what GymWrapper itself does in SAME_STEP, with the other reader.
    """
    native = vec.unwrapped
    native.set_autoreset_mode("disabled")
    base = GymWrapper(vec, **wrapper_kwargs)
    native.set_autoreset_mode("same_step")
    env = base.auto_register_info_dict(
        info_dict_reader=FinalObsReader(base.observation_spec, backend="gymnasium")
    )
    return TransformedEnv(env, VecGymEnvTransform())


def wrap(vec: gym.vector.VectorEnv, **wrapper_kwargs: Any) -> Any:
    """A TorchRL env over ``vec``: GymWrapper in DISABLED mode, ``same_step_env`` in SAME_STEP."""
    if vec.unwrapped.autoreset_mode is gym.vector.AutoresetMode.SAME_STEP:
        return same_step_env(vec, **wrapper_kwargs)
    return GymWrapper(vec, **wrapper_kwargs)
