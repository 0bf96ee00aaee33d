"""The Task contract: one object per family owns the difficulty (level), the generator and the oracle.

The supervised sampler and the interactive environments are views of the same Task, so a curriculum that
moves the level moves both. Levels are frozen dataclasses with a ``name``; a task ships a default ladder
and accepts any custom level, which is appended to its ladder so it also has an index (vector envs keep a
per-sub-env level index in a device tensor).

Sequence observations (maze ``tokens`` mode, recall ``sequence`` mode, generation) share one layout, made
by :func:`envs.common.spaces.sequence_space`: a dict with ``"tokens"`` (T,) int64, right-padded with the
task's pad id, and ``"length"`` (1,) int64, the number of valid tokens. An agent reads its logits at index
``length - 1`` — the same layout ``sample_batch`` produces, so a model trained supervised acts in the env.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

L = TypeVar("L")
LevelLike = int | str | Mapping[str, Any] | Any


@dataclasses.dataclass(frozen=True)
class SupervisedBatch:
    """A batch for supervised training of a backbone.

    tokens:    (B, T) int64 input ids.
    targets:   (B, T) int64 next-token targets, or (B, T, K) for K-horizon targets (MLM-U style).
    loss_mask: bool, same shape as ``targets``: True where the loss counts.
    loss_weight, accuracy_weight: the batch's loss positions (all of ``loss_mask``; the next-token ones
        for the accuracy) over the mean batch's of its draw. The trainer scales the batch's mean loss and
        accuracy by them, so that batches bucketed by length (``CurriculumSampler(bucket=True)``: short
        rows together) keep the token weighting of random batches; 1.0 for a batch of random rows.
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    loss_mask: torch.Tensor
    loss_weight: float = 1.0
    accuracy_weight: float = 1.0

    def parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(tokens, targets, loss_mask) as they are. ``dataclasses.astuple`` would deep-copy each tensor,
        and a view's deep copy copies its whole storage (a prefetched reservoir, not the batch's rows)."""
        return self.tokens, self.targets, self.loss_mask

    @property
    def weighted(self) -> bool:
        """True when the batch carries weights other than 1.0 (a length-bucketed batch)."""
        return self.loss_weight != 1.0 or self.accuracy_weight != 1.0

    def with_parts(
        self, tokens: torch.Tensor, targets: torch.Tensor, loss_mask: torch.Tensor
    ) -> SupervisedBatch:
        """These tensors in place of the batch's, its weights kept."""
        return SupervisedBatch(tokens, targets, loss_mask, self.loss_weight, self.accuracy_weight)

    def to(self, device: torch.device | str) -> SupervisedBatch:
        return self.with_parts(*(t.to(device, non_blocking=True) for t in self.parts()))

    def padded(self, width: int, pad_id: int = 0) -> SupervisedBatch:
        """The batch right-padded to ``width`` tokens: tokens and targets with ``pad_id``, the loss mask
        with False (padding never counts in the loss)."""

        def pad(t: torch.Tensor, value: int | bool) -> torch.Tensor:
            spec = (0, 0) * (t.dim() - 2) + (0, width - t.shape[1])
            return F.pad(t, spec, value=value) if width > t.shape[1] else t

        return self.with_parts(
            pad(self.tokens, pad_id), pad(self.targets, pad_id), pad(self.loss_mask, False)
        )

    @staticmethod
    def concat(parts: Sequence[SupervisedBatch], pad_id: int) -> SupervisedBatch:
        """Stack batches of different lengths into one, each right-padded to the longest (:meth:`padded`)."""
        if not parts:
            raise ValueError("SupervisedBatch.concat needs at least one batch.")
        if any(part.weighted for part in parts):
            raise ValueError(
                "SupervisedBatch.concat joins unweighted batches: a joined batch's weights depend on how "
                "many loss positions each part's draw expects; join the parts first, then set the joined "
                "batch's weights (as CurriculumSampler.sample_batch does)."
            )
        width = max(part.tokens.shape[1] for part in parts)
        padded = [part.padded(width, pad_id) for part in parts]
        return SupervisedBatch(*(torch.cat(tensors) for tensors in zip(*(part.parts() for part in padded))))


def level_from_fields(level_cls: type[L], fields: Mapping[str, Any]) -> L:
    """A ``level_cls`` level from a mapping of its fields; unknown or missing fields fail by name."""
    accepted = sorted(f.name for f in dataclasses.fields(level_cls))
    unknown = sorted(set(fields) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown level field(s) {unknown} for {level_cls.__name__}; accepted fields: {accepted}."
        )
    try:
        return level_cls(**fields)
    except TypeError as error:  # a required field is missing
        raise ValueError(f"{level_cls.__name__} from {dict(fields)!r}: {error}.") from None


class LevelLadder(Generic[L]):
    """An ordered list of named levels; resolves an index, a name, a level or a field mapping to an index."""

    def __init__(self, levels: Sequence[L], level_cls: type[L]):
        if len(levels) == 0:
            raise ValueError(
                "A level ladder needs at least one level; pass levels=None for the default ladder."
            )
        self.level_cls = level_cls
        self._levels: list[L] = []
        for level in levels:
            self._append(self.coerce(level))

    def __len__(self) -> int:
        return len(self._levels)

    def __getitem__(self, index: int) -> L:
        return self._levels[index]

    def __iter__(self):
        return iter(self._levels)

    @property
    def names(self) -> list[str]:
        return [level.name for level in self._levels]

    def index(self, level: LevelLike) -> int:
        """Index of ``level`` in the ladder; a custom level (object or mapping) is appended first."""
        found = self.find(level)
        return found if found is not None else self._append(self.coerce(level))

    def find(self, level: LevelLike) -> int | None:
        """Index of ``level`` in the ladder, or None for a valid custom level not in it yet.

        Changes nothing, so a caller can check a new level (does it fit?) before ``index`` appends it;
        anything that ``index`` would refuse raises the same ValueError here.
        """
        if isinstance(level, bool | np.bool_):
            raise ValueError(f"Unknown level {level!r}: {self._accepted()}.")
        if isinstance(level, int | np.integer):
            if not 0 <= level < len(self._levels):
                raise ValueError(f"Unknown level index {level}: {self._accepted()}.")
            return int(level)
        if isinstance(level, str):
            if level not in self.names:
                raise ValueError(f"Unknown level name {level!r}: {self._accepted()}.")
            return self.names.index(level)
        candidate = self.coerce(level)
        for i, existing in enumerate(self._levels):
            if existing == candidate:
                return i
        if candidate.name in self.names:
            raise ValueError(
                f"Two different levels share the name {candidate.name!r}; give the custom one a new name."
            )
        return None

    def coerce(self, level: Any) -> L:
        """``level`` as a level object (a mapping of fields is turned into one); not added to the ladder."""
        if isinstance(level, Mapping):
            level = level_from_fields(self.level_cls, level)
        if not isinstance(level, self.level_cls):
            raise ValueError(f"Unknown level {level!r}: {self._accepted()}.")
        if not isinstance(level.name, str) or not level.name:
            raise ValueError(
                f"A {self.level_cls.__name__} needs a non-empty str name (levels are chosen by name), "
                f"got name={level.name!r}."
            )
        return level

    def _append(self, level: L) -> int:
        if level.name in self.names:
            raise ValueError(
                f"Two different levels share the name {level.name!r}; give the custom one a new name."
            )
        self._levels.append(level)
        return len(self._levels) - 1

    def _accepted(self) -> str:
        return (
            f"use an index in [0, {len(self._levels) - 1}], one of the names {self.names}, "
            f"a {self.level_cls.__name__} or a mapping of its fields"
        )


def levels_from_spec(
    spec: Sequence[Any] | None, defaults: Sequence[L], level_cls: type[L], what: str
) -> list[L] | None:
    """Levels from a config's ``task.levels``: names of ``defaults`` levels, field mappings or levels.

    None stands for the default ladder (returned as None). ``what`` names the family in errors ("maze",
    "copy", ...). An empty list, an unknown name or an unknown field fails with the accepted forms.
    """
    if spec is None:
        return None
    if isinstance(spec, str | Mapping) or not isinstance(spec, Sequence):
        raise ValueError(
            f"task.levels must be a list of {what} level names or field mappings (or null for the "
            f"default ladder), got {spec!r}."
        )
    if len(spec) == 0:
        raise ValueError(
            f"task.levels is an empty list; give at least one {what} level, or null for the default ladder."
        )
    by_name = {level.name: level for level in defaults}
    accepted = f"use one of {sorted(by_name)} or a mapping of {level_cls.__name__} fields"
    levels = []
    for item in spec:
        if isinstance(item, level_cls):
            levels.append(item)
        elif isinstance(item, str):
            if item not in by_name:
                raise ValueError(f"task.levels names unknown {what} level {item!r}; {accepted}.")
            levels.append(by_name[item])
        elif isinstance(item, Mapping):
            try:
                levels.append(level_from_fields(level_cls, item))
            except ValueError as error:  # unknown or missing fields, or a value the level rejects
                raise ValueError(f"task.levels entry {dict(item)!r}: {error}") from None
        else:
            raise ValueError(f"task.levels entry {item!r} is not a {what} level; {accepted}.")
    return levels


class Task(ABC, Generic[L]):
    """Base class of a task family: a level ladder, the current level and a supervised sampler."""

    level_cls: type
    horizons: int = 1  # targets per position: K of (B, T, K) multi-horizon targets (1: (B, T))

    def __init__(self, levels: Sequence[L | str] | None = None, level: LevelLike = 0):
        self.ladder: LevelLadder[L] = LevelLadder(self._named_levels(levels), self.level_cls)
        self.level_index = self.ladder.index(level)

    def _named_levels(self, levels: Sequence[L | str] | None) -> list[L]:
        """``levels`` with each name replaced by the default ladder's level of that name (None: the default
        ladder), so ``levels=["5x5", "8x8"]`` works as it does in a runner's ``task.levels``."""
        defaults = list(self.default_levels())
        if not levels:
            return defaults
        by_name = {level.name: level for level in defaults}
        unknown = [item for item in levels if isinstance(item, str) and item not in by_name]
        if unknown:
            raise ValueError(
                f"Unknown level name(s) {unknown}: names come from the default ladder {sorted(by_name)}; "
                f"pass a {self.level_cls.__name__} or a mapping of its fields for any other level."
            )
        return [by_name[item] if isinstance(item, str) else item for item in levels]

    @classmethod
    @abstractmethod
    def default_levels(cls) -> Sequence[L]:
        """The documented default ladder, easiest first."""

    @property
    def level(self) -> L:
        return self.ladder[self.level_index]

    @property
    def num_levels(self) -> int:
        return len(self.ladder)

    def resolve(self, level: LevelLike | None = None) -> L:
        """The level object for ``level`` (default: the current level); a custom level joins the ladder."""
        return self.level if level is None else self.ladder[self.ladder.index(level)]

    def set_level(self, level: LevelLike) -> None:
        """Move the task to ``level`` (index, name, level object or field mapping)."""
        self.level_index = self.ladder.index(level)

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of token ids a model reading this task's sequences must embed."""

    @property
    @abstractmethod
    def action_token_ids(self) -> list[int]:
        """Token id of each env action, in order: an agent acts by reading logits[..., action_token_ids]."""

    @abstractmethod
    def sample_batch(
        self,
        batch_size: int,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        level: LevelLike | None = None,
    ) -> SupervisedBatch:
        """A supervised batch at ``level`` (default: the current one) on ``device``."""
