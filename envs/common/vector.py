"""Base class of MindGym's native batched environments: all state in torch tensors on one device.

A subclass implements four hooks that act on the whole batch with tensor ops (no Python loop over
sub-envs, no host sync):

    _reset_envs(mask)              start new episodes where ``mask`` is True (levels already applied)
    _step_envs(actions, active)    advance sub-envs where ``active``; return reward, terminated, truncated
    _observe()                     the current observation batch (a tensor, or a dict of tensors)
    _info()                        per-sub-env info tensors; must include ``"success"`` (bool)

This class supplies Gymnasium's vector API around them: the three autoreset modes, ``reset_mask``,
action checks, per-sub-env levels (``level_ids``; ``set_level`` takes effect at each sub-env's next
reset), ``call``/``get_attr``/``set_attr``, and optional NumPy output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs.common.graph import StepGraph
from envs.common.task import LevelLike, Task
from foundation import check_seed, make_generator, resolve_device

Observation = torch.Tensor | dict[str, torch.Tensor]

_MODES = {m.value.lower(): m for m in AutoresetMode} | {m.name.lower(): m for m in AutoresetMode}


def parse_autoreset_mode(mode: AutoresetMode | str) -> AutoresetMode:
    """Accept an AutoresetMode or its name/value in any case ('next_step', 'SameStep', ...)."""
    if isinstance(mode, AutoresetMode):
        return mode
    key = str(mode).lower()
    if key not in _MODES:
        raise ValueError(f"Unknown autoreset_mode {mode!r}; use one of {[m.name for m in AutoresetMode]}.")
    return _MODES[key]


def to_numpy(value: Any) -> Any:
    """Tensors (also inside dicts) to NumPy arrays; other values unchanged."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    return value


def check_task_arguments(env: str, task: Task | None, task_cls: type[Task], **given: Any) -> None:
    """Reject task-building arguments next to a ready ``task``.

    A vector env given ``task=`` plays that Task object itself (shared with the supervised sampler), so
    arguments that would build a different task cannot apply; naming them beats ignoring them.
    ``given`` maps each such argument to its value, None where the caller left it out.
    """
    if task is None:
        return
    if not isinstance(task, task_cls):
        raise TypeError(f"{env} needs task= to be a {task_cls.__name__}, got {type(task).__name__}.")
    clashes = [f"{name}=" for name, value in given.items() if value is not None]
    if clashes:
        raise ValueError(
            f"{env} got task= together with {', '.join(clashes)}, which build a task of their own; "
            f"the env plays the given {task_cls.__name__} as it is. Build that task with them, "
            "or drop task=."
        )


class TorchVectorEnv(gym.vector.VectorEnv, ABC):
    """A batch of ``num_envs`` sub-envs of one Task, stepped together on ``device``."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        task: Task,
        num_envs: int,
        single_observation_space: gym.Space,
        single_action_space: gym.Space,
        device: str | torch.device = "auto",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        numpy: bool = False,
        seed: int | None = None,
        *,
        level: int | None = None,
    ):
        """``level``: ladder index every sub-env starts at (default: the task's current level)."""
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}.")
        self.task = task
        self.num_envs = num_envs
        self.device = resolve_device(device)
        self.numpy = bool(numpy)
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = batch_space(single_observation_space, num_envs)
        self.action_space = batch_space(single_action_space, num_envs)
        self.metadata = dict(type(self).metadata)
        self.set_autoreset_mode(autoreset_mode)
        self.generator = make_generator(seed, device=self.device)
        start = task.level_index if level is None else level
        self.level_ids = torch.full((num_envs,), start, dtype=torch.long, device=self.device)
        self.next_level_ids = self.level_ids.clone()
        self._needs_reset = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        self._all_envs = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        self._step_graph: StepGraph | None = None

    # ----------------------------------------------------------------- hooks a subclass implements
    @abstractmethod
    def _reset_envs(self, mask: torch.Tensor) -> None:
        """See the module docstring."""

    @abstractmethod
    def _step_envs(
        self, actions: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """See the module docstring."""

    @abstractmethod
    def _observe(self) -> Observation:
        """See the module docstring."""

    @abstractmethod
    def _info(self) -> dict[str, torch.Tensor]:
        """See the module docstring."""

    # ----------------------------------------------------------------- Gymnasium vector API
    def set_autoreset_mode(self, mode: AutoresetMode | str) -> None:
        """Switch autoreset semantics (call ``reset()`` afterwards)."""
        self.autoreset_mode = parse_autoreset_mode(mode)
        self.metadata["autoreset_mode"] = self.autoreset_mode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every sub-env, or those where ``options["reset_mask"]`` is True."""
        seed, options = self._check_reset_arguments(seed, options)
        mask = options.pop("reset_mask", None)
        mask = self._all_envs if mask is None else self._as_mask(mask)
        super().reset(seed=seed)
        if seed is not None:
            self.generator.manual_seed(seed)
        self._reset(mask)
        self._needs_reset = self._needs_reset & ~mask
        return self._output(self._observe()), self._output(self._info())

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        actions = self._prepare_actions(actions)
        step = self._step_graph if self._step_graph is not None else self._step_tensors
        return tuple(self._output(value) for value in step(actions))  # type: ignore[return-value]

    def use_cuda_graph(self) -> None:
        """Replay every later ``step`` as one CUDA graph (recorded at the next step); see envs.common.graph.

        The step's outputs then live in fixed buffers that the following step overwrites: copy what you
        keep. Needs a CUDA device and tensor (not NumPy) outputs.
        """
        if self.device.type != "cuda" or self.numpy:
            raise ValueError(
                f"cuda_graph needs device='cuda' and numpy=False (got device={self.device}, "
                f"numpy={self.numpy}); drop cuda_graph for CPU or NumPy outputs."
            )
        self._step_graph = StepGraph(self, self._step_tensors)

    def _step_tensors(self, actions: torch.Tensor) -> tuple[Any, ...]:
        """The whole step on device tensors: (obs, reward, terminated, truncated, info)."""
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            reward, terminated, truncated = self._step_envs(actions, self._all_envs)
            done = terminated | truncated
            final_obs, final_info = self._observe(), self._info()
            self._reset(done)
            info = self._info()
            info.update(final_obs=final_obs, final_info=final_info, _final_obs=done, _final_info=done)
        else:
            was_done = self._needs_reset
            reward, terminated, truncated = self._step_envs(actions, ~was_done)
            if self.autoreset_mode is AutoresetMode.NEXT_STEP:
                self._reset(was_done)
                self._needs_reset = terminated | truncated
            else:
                self._needs_reset = was_done | terminated | truncated
            reward = reward.masked_fill(was_done, 0.0)
            terminated, truncated = terminated & ~was_done, truncated & ~was_done
            info = self._info()
        return self._observe(), reward, terminated, truncated, info

    # ----------------------------------------------------------------- levels
    def set_level(self, level: LevelLike | torch.Tensor, env_ids: Any = None) -> None:
        """Set the level of all sub-envs, or of ``env_ids``; it applies at each one's next reset.

        ``level`` is an index, a name, a Level, a field mapping, or a LongTensor of ladder indices (one per
        selected sub-env, e.g. from a curriculum on the same device).
        """
        # Every check comes before any change: a refused call leaves the env exactly as it was.
        ids = self._check_env_ids(env_ids)
        count = self.num_envs if isinstance(ids, slice) else ids.numel()
        if isinstance(level, torch.Tensor):
            self.next_level_ids[ids] = self._check_level_tensor(level, count)
        else:
            self.next_level_ids[ids] = self.task.ladder.index(level)  # a custom level joins the ladder last

    def get_level(self) -> torch.Tensor:
        """Ladder index of the level each sub-env's current episode runs at."""
        return self.level_ids

    # ----------------------------------------------------------------- call / attributes
    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call method ``name`` of this env (or read the attribute) — a native env is one object."""
        attr = getattr(self, name)
        return attr(*args, **kwargs) if callable(attr) else attr

    def get_attr(self, name: str) -> Any:
        return getattr(self, name)

    def set_attr(self, name: str, values: Any) -> None:
        if name == "level":
            self.set_level(values)
        else:
            setattr(self, name, values)

    # ----------------------------------------------------------------- helpers
    def _check_env_ids(self, env_ids: Any) -> torch.Tensor | slice:
        """``env_ids`` as a LongTensor of sub-env indices (a slice for all); refuses anything else by name.

        Indices on an accelerator are not range-checked, which would wait for the device.
        """
        if env_ids is None:
            return slice(None)
        rule = f"env_ids must be None or integer sub-env indices in [0, {self.num_envs - 1}]"
        if isinstance(env_ids, bool | np.bool_):
            raise ValueError(f"{rule}, got {env_ids!r}.")
        try:
            ids = torch.as_tensor(env_ids)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{rule}, got {env_ids!r} ({err}).") from None
        if ids.dtype == torch.bool or ids.dtype.is_floating_point or ids.dtype.is_complex:
            raise ValueError(
                f"{rule}, got dtype {ids.dtype}; turn a bool mask into indices with mask.nonzero()."
            )
        if ids.dim() > 1:
            raise ValueError(f"{rule} (a 0-D or 1-D array), got shape {tuple(ids.shape)}.")
        ids = ids.reshape(-1)
        if ids.device.type == "cpu" and ids.numel():
            low, high = int(ids.min()), int(ids.max())
            if low < 0 or high >= self.num_envs:
                raise ValueError(f"{rule}, got {low if low < 0 else high} among {env_ids!r}.")
        return ids.to(self.device, torch.long)

    def _check_level_tensor(self, level: torch.Tensor, count: int) -> torch.Tensor:
        """A tensor of ladder indices for ``count`` sub-envs, checked (range only on the host)."""
        if level.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"A tensor of levels must hold integer ladder indices (int32/int64), got {level.dtype}."
            )
        if level.shape not in ((), (count,)):
            raise ValueError(
                f"A tensor of levels must have shape () or ({count},) (one per selected sub-env), "
                f"got {tuple(level.shape)}."
            )
        if (
            level.device.type == "cpu"
            and level.numel()
            and (int(level.min()) < 0 or int(level.max()) >= self.task.num_levels)
        ):
            raise ValueError(
                f"Level indices must lie in [0, {self.task.num_levels - 1}] (this env's ladder), "
                f"got values from {int(level.min())} to {int(level.max())}."
            )
        return level.to(self.device, torch.long)

    def _reset(self, mask: torch.Tensor) -> None:
        self.level_ids = torch.where(mask, self.next_level_ids, self.level_ids)
        self._reset_envs(mask)

    def _check_reset_arguments(self, seed: Any, options: Any) -> tuple[int | None, dict[str, Any]]:
        """``reset``'s seed (a plain int or None) and options (a fresh dict), checked before any change."""
        seed = check_seed(seed)
        if options is not None and not isinstance(options, Mapping):
            raise TypeError(
                f"reset options must be a dict or None, got {type(options).__name__}: {options!r}."
            )
        options = dict(options or {})
        unknown = sorted(set(options) - {"reset_mask"}, key=repr)
        if unknown:
            raise ValueError(
                f"Unknown reset option(s) {unknown}; the only option is 'reset_mask'. "
                "Set difficulty with set_level(...), which survives automatic resets."
            )
        return seed, options

    def _as_mask(self, mask: Any) -> torch.Tensor:
        try:
            mask = torch.as_tensor(mask, device=self.device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"reset_mask must be a bool array of shape ({self.num_envs},), got {mask!r} ({err})."
            ) from None
        if mask.dtype != torch.bool or mask.shape != (self.num_envs,):
            raise ValueError(
                f"reset_mask must be a bool array of shape ({self.num_envs},), "
                f"got dtype {mask.dtype} and shape {tuple(mask.shape)}."
            )
        return mask

    def _prepare_actions(self, actions: Any) -> torch.Tensor:
        """Check shape and dtype always; check the range where actions live on the host (no device sync)."""
        space = self.single_action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise TypeError(f"{type(self).__name__} must override _prepare_actions for {space}.")
        on_host = not isinstance(actions, torch.Tensor) or actions.device.type == "cpu"
        if not isinstance(actions, torch.Tensor):
            actions = np.asarray(actions)
            if actions.dtype.kind not in "iu":
                raise ValueError(
                    f"Actions must be integers in [{space.start}, {space.start + space.n - 1}], "
                    f"got dtype {actions.dtype}."
                )
            actions = torch.from_numpy(actions.astype(np.int64, copy=False))
        if actions.dtype.is_floating_point or actions.dtype in (
            torch.bool,
            torch.complex64,
            torch.complex128,
        ):
            raise ValueError(f"Actions must be an integer tensor, got dtype {actions.dtype}.")
        if actions.shape != (self.num_envs,):
            raise ValueError(f"Actions must have shape ({self.num_envs},), got {tuple(actions.shape)}.")
        if (
            on_host
            and actions.numel()
            and (int(actions.min()) < space.start or int(actions.max()) >= space.start + space.n)
        ):
            raise ValueError(f"Actions must lie in [{space.start}, {space.start + space.n - 1}].")
        return actions.to(self.device, torch.long, non_blocking=True)

    def _output(self, value: Any) -> Any:
        return to_numpy(value) if self.numpy else value
