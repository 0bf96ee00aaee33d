"""TorchRL over MindGym's native vector envs: GymWrapper, plus a fix for TorchRL's same-step final_obs reader.

Importing this module needs torchrl: ``pip install torch==2.13.0 -e ".[torchrl]"`` (it is not imported by
``envs`` itself, so MindGym works without it).

On the CPU, ``GymWrapper(gym.make_vec(..., vectorization_mode="vector_entry_point",
autoreset_mode="disabled"))`` works as it is for every id and observation mode: TorchRL then resets
finished sub-envs itself through ``reset_mask``, and this is the mode TorchRL prefers. Under
``autoreset_mode="same_step"`` GymWrapper reads each step's ``info["final_obs"]`` with
``torchrl.envs.libs.gym.terminal_obs_reader``, which (torchrl 0.14.1) mishandles two kinds of observation
space, whatever env produces them (gymnasium's own ``FrozenLake-v1`` under ``SyncVectorEnv`` fails the
same way):

- ``Dict`` spaces (recall ``sequence``, maze ``tokens``, TextQuality): it looks each observation key up among
  the entries of ``final_info`` instead of in ``final_obs``, finds nothing and leaves zeros, so the final
  ``length`` is 0, outside its ``Box(1, T)``;
- ``Discrete`` spaces (recall ``stream``) with the default one-hot encoding: it writes the raw token id into
  every slot of the one-hot row.

``same_step_env`` builds the wrapper with a reader that fixes both (``FinalObsReader``).

On a GPU, GymWrapper (torchrl 0.14.1) hands the env NumPy: it turns each action batch into a host array, and
in DISABLED mode turns TorchRL's ``_reset`` mask into ``options["reset_mask"]`` with ``.numpy()``, which
raises on a CUDA tensor. ``DeviceGymWrapper`` passes both as torch tensors on the wrapper's device instead;
MindGym's vector envs take tensors on any device there, so a CUDA env's batches stay on the GPU.
``wrap`` and ``same_step_env`` build it; it works on the CPU alike.
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
from envs.common.vector import TorchVectorEnv

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


class DeviceGymWrapper(GymWrapper):
    """GymWrapper for MindGym's vector envs: actions and the DISABLED-mode reset mask stay torch tensors.

    The stock wrapper sends the env NumPy, which needs every batch on the host: the reset mask's
    ``.numpy()`` raises on CUDA (torchrl 0.14.1, ``GymWrapper._replace_reset``) and each action batch is
    copied to the host and back. The wrapper's ``device`` defaults to the env's own device, so a CUDA env
    gives CUDA data without copies (GymWrapper's default is the CPU).
    """

    def __init__(self, env: gym.vector.VectorEnv, **kwargs: Any) -> None:
        if not isinstance(env.unwrapped, TorchVectorEnv):
            raise TypeError(
                f"DeviceGymWrapper passes torch tensors, which only MindGym's vector envs take; got "
                f"{type(env.unwrapped).__name__}. Wrap other envs in torchrl's GymWrapper."
            )
        kwargs.setdefault("device", env.unwrapped.device)
        super().__init__(env, **kwargs)

    def read_action(self, action: torch.Tensor) -> torch.Tensor:
        """The action batch as the env's integer actions, on the wrapper's device (one-hot -> indices)."""
        if isinstance(self.action_spec, OneHot):
            return action.argmax(-1)
        return action

    def _replace_reset(self, reset: torch.Tensor | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """In DISABLED mode, TorchRL's ``_reset`` mask becomes ``options["reset_mask"]`` as a tensor.

        Without a mask (a plain ``env.reset(tensordict)``) every sub-env resets; the stock wrapper raises.
        """
        if reset is not None and self._env.unwrapped.autoreset_mode is gym.vector.AutoresetMode.DISABLED:
            kwargs.setdefault("options", {})["reset_mask"] = reset.reshape(self.batch_size)
        return kwargs


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
    base = DeviceGymWrapper(vec, **wrapper_kwargs)
    native.set_autoreset_mode("same_step")
    env = base.auto_register_info_dict(
        info_dict_reader=FinalObsReader(base.observation_spec, backend="gymnasium")
    )
    return TransformedEnv(env, VecGymEnvTransform())


def wrap(vec: gym.vector.VectorEnv, **wrapper_kwargs: Any) -> Any:
    """A TorchRL env over ``vec`` on its device: DeviceGymWrapper in DISABLED mode, ``same_step_env`` in
    SAME_STEP."""
    if vec.unwrapped.autoreset_mode is gym.vector.AutoresetMode.SAME_STEP:
        return same_step_env(vec, **wrapper_kwargs)
    return DeviceGymWrapper(vec, **wrapper_kwargs)
