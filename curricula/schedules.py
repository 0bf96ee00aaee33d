"""Curriculum schedules: the base class, a fixed level and staged (step- or episode-boundary) schedules.

A schedule owns the distribution over a task's ladder indices and updates it from episode outcomes with
tensor ops on one device (see :class:`Schedule`). Wrappers sample each new episode's level from it and
apply the level through the task's ``set_level``; the supervised sampler draws batches from the same
distribution. The adaptive, mixture and learning-progress schedules live in sibling modules.
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from curricula.stats import SuccessStats
from foundation.device import resolve_device

KnobCallback = Callable[[dict[str, float]], None]


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1], or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def check_count(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    return value


def check_level(name: str, value: Any, num_levels: int) -> int:
    """``value`` as a ladder index in [0, num_levels), or a ValueError naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_levels:
        raise ValueError(
            f"Unknown level {value!r} for {name}: use a ladder index in [0, {num_levels - 1}] "
            f"(the task has {num_levels} levels)."
        )
    return value


def apply_knobs(target: Any, knobs: Mapping[str, float]) -> None:
    """Call ``target.set_<name>(value)`` for each knob, e.g. {"plasticity": 0.5} -> set_plasticity(0.5)."""
    for name, value in knobs.items():
        setter = getattr(target, f"set_{name}", None)
        if not callable(setter):
            raise ValueError(
                f"Knob {name!r} needs a method set_{name}(value) on {type(target).__name__}; "
                f"rename the knob or pass on_stage=<your own callback>."
            )
        setter(value)


class Schedule(ABC):
    """Base class: a distribution over ``num_levels`` ladder indices held in tensors on ``device``.

    ``update`` and ``sample`` run on every vector-env step, so they use tensor ops only (no host sync);
    ``sync`` is the one place a schedule may read device values on the host (wrappers call it when they
    log). ``window`` is the number of recent episodes per level that success rates are measured over.
    """

    name: ClassVar[str]
    _tensor_state: ClassVar[tuple[str, ...]] = ()

    def __init__(self, num_levels: int, window: int = 100):
        self.num_levels = check_count("num_levels", num_levels, minimum=1)
        self.window = check_count("window", window, minimum=1)
        self.device = torch.device("cpu")
        self.steps = 0

    def to(self, device: str | torch.device) -> Schedule:
        """Move the schedule's tensors to ``device`` (the env's) and return it."""
        self.device = resolve_device(device)
        for attr in self._tensor_state:
            setattr(self, attr, getattr(self, attr).to(self.device))
        return self

    @abstractmethod
    def probabilities(self) -> torch.Tensor:
        """(num_levels,) float probabilities of the level a new episode or sample should have."""

    @abstractmethod
    def level(self) -> torch.Tensor:
        """The level the schedule is at (0-dim long tensor): the frontier, the stage's level, ..."""

    def advance(self, steps: int = 1) -> None:
        """Move the run's clock by ``steps`` (optimiser steps in the runners); staged schedules move on it.

        Only the owner of the training loop calls this (through :meth:`Curriculum.advance`).
        """
        self.steps += int(steps)

    def update(
        self, stats: SuccessStats, levels: torch.Tensor, success: torch.Tensor, done: torch.Tensor
    ) -> None:
        """Learn from a step's outcomes, after ``stats.record`` saw them. Tensor ops only."""
        return None

    def sync(self) -> None:
        """Host-side bookkeeping (e.g. firing a knob callback); called when the wrapper logs."""
        return None

    def knobs(self) -> dict[str, float]:
        """Extra knobs of the current stage (e.g. {"plasticity": 0.5}); empty for most schedules."""
        return {}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` ladder indices drawn from :meth:`probabilities` by inverse CDF (no host sync)."""
        cdf = self.probabilities().cumsum(0)
        u = torch.rand(n, generator=generator, device=self.device) * cdf[-1]
        return torch.searchsorted(cdf, u, right=True).clamp(max=self.num_levels - 1)

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers and CPU tensors (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "name": self.name,
            "num_levels": self.num_levels,
            "steps": self.steps,
            "tensors": {attr: getattr(self, attr).detach().cpu().clone() for attr in self._tensor_state},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict` of a schedule built with the same arguments."""
        if state["name"] != self.name or state["num_levels"] != self.num_levels:
            raise ValueError(
                f"Cannot load a {state['name']!r} schedule over {state['num_levels']} levels into a "
                f"{self.name!r} schedule over {self.num_levels} levels; build the same schedule first."
            )
        self.steps = int(state["steps"])
        for attr in self._tensor_state:
            setattr(self, attr, state["tensors"][attr].to(self.device).clone())

    def _one_hot(self, level: torch.Tensor) -> torch.Tensor:
        return F.one_hot(level, self.num_levels).float()


class FixedSchedule(Schedule):
    """Always the same level (factory name "none"): a run without a curriculum, with the same logging."""

    name = "none"
    _tensor_state = ("fixed",)

    def __init__(self, num_levels: int, level: int = 0, window: int = 100):
        super().__init__(num_levels, window)
        self.fixed = torch.tensor(check_level("FixedSchedule(level=...)", level, num_levels))

    def probabilities(self) -> torch.Tensor:
        return self._one_hot(self.fixed)

    def level(self) -> torch.Tensor:
        return self.fixed


class StagedSchedule(Schedule):
    """Stages that end at step (or episode) boundaries; each sets a level and optional extra knobs.

    ``stages`` is a list of mappings ``{"until": count, "level": index, "knobs": {...}}``: a stage lasts
    while the count of ``unit`` ("steps" or "episodes") is below its ``until``; the last stage leaves
    ``until`` out and runs to the end. ``level`` defaults to the stage's position (capped at the last
    level). ``on_stage(knobs)`` is called with the knobs of the first stage at construction and of each
    later stage when it begins (for "episodes" on a vector env: at the next ``sync``, i.e. when the
    wrapper logs) — e.g. ``on_stage=lambda k: apply_knobs(backbone, k)``.
    """

    name = "staged"
    _tensor_state = ("stage", "episodes")
    _STAGE_KEYS = frozenset({"until", "level", "knobs"})

    def __init__(
        self,
        num_levels: int,
        stages: Sequence[Mapping[str, Any]],
        unit: str = "steps",
        on_stage: KnobCallback | None = None,
        window: int = 100,
    ):
        super().__init__(num_levels, window)
        if unit not in ("steps", "episodes"):
            raise ValueError(f"unit must be 'steps' or 'episodes', got {unit!r}.")
        if isinstance(stages, Mapping | str) or not isinstance(stages, Sequence) or len(stages) == 0:
            raise ValueError(
                "StagedSchedule needs a non-empty list of stages, e.g. "
                "[{'until': 1000, 'level': 0}, {'level': 1}]."
            )
        self.unit = unit
        self.on_stage = on_stage
        self.stages = [self._parse_stage(i, stage, len(stages)) for i, stage in enumerate(stages)]
        self.bounds = [stage["until"] for stage in self.stages[:-1]]
        if any(later <= earlier for earlier, later in zip(self.bounds, self.bounds[1:])):
            raise ValueError(f"Stage boundaries ('until') must increase, got {self.bounds}.")
        self._bounds = torch.tensor(self.bounds, dtype=torch.long)
        self._levels = torch.tensor([stage["level"] for stage in self.stages], dtype=torch.long)
        self.stage = torch.zeros((), dtype=torch.long)
        self.episodes = torch.zeros((), dtype=torch.long)
        self._host_stage = 0
        self._fire(0)

    @classmethod
    def fractions(
        cls,
        total: int,
        bounds: Sequence[float],
        knobs: Sequence[Mapping[str, float]] | None = None,
        levels: Sequence[int] | None = None,
        num_levels: int = 1,
        unit: str = "steps",
        on_stage: KnobCallback | None = None,
        window: int = 100,
    ) -> StagedSchedule:
        """Stages ending at fractions of ``total``; ``len(bounds) + 1`` stages.

        The seed's plasticity schedule (alpha 0.1 for the first 15% of steps, 0.5 to 40%, 0.99 after):
        ``StagedSchedule.fractions(total, (0.15, 0.40), [{"plasticity": a} for a in (0.1, 0.5, 0.99)])``.
        """
        total = check_count("total", total, minimum=1)
        fractions = [check_fraction("each bound", b) for b in bounds]
        if any(b >= a for a, b in zip(fractions[1:], fractions)):
            raise ValueError(f"bounds must increase strictly, got {list(bounds)}.")
        n = len(fractions) + 1
        for name, values in (("knobs", knobs), ("levels", levels)):
            if values is not None and len(values) != n:
                raise ValueError(f"{name} needs one entry per stage ({n} for {len(fractions)} bounds).")
        stages: list[dict[str, Any]] = []
        for i in range(n):
            stage: dict[str, Any] = {"knobs": dict(knobs[i]) if knobs is not None else {}}
            if i < n - 1:
                stage["until"] = round(fractions[i] * total)
            if levels is not None:
                stage["level"] = levels[i]
            stages.append(stage)
        return cls(num_levels, stages, unit=unit, on_stage=on_stage, window=window)

    def _parse_stage(self, i: int, stage: Mapping[str, Any], n: int) -> dict[str, Any]:
        if not isinstance(stage, Mapping) or set(stage) - self._STAGE_KEYS:
            raise ValueError(
                f"Stage {i} must be a mapping with keys among {sorted(self._STAGE_KEYS)}, got {stage!r}."
            )
        until = stage.get("until")
        if i == n - 1 and until is not None:
            raise ValueError(
                f"The last stage runs to the end of training: leave out its 'until' (got {until})."
            )
        if i < n - 1:
            check_count(f"stage {i} 'until'", until, minimum=1)
        level = stage.get("level", min(i, self.num_levels - 1))
        knobs = dict(stage.get("knobs") or {})
        for key, value in knobs.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"Stage {i} knob {key!r} must be a number, got {value!r}.")
        return {"until": until, "level": check_level(f"stage {i}", level, self.num_levels), "knobs": knobs}

    def to(self, device: str | torch.device) -> StagedSchedule:
        super().to(device)
        self._bounds, self._levels = self._bounds.to(self.device), self._levels.to(self.device)
        return self

    def stage_at(self, count: int) -> int:
        """Index of the stage in force when ``count`` steps (or episodes) have been completed."""
        return bisect.bisect_right(self.bounds, count)

    def knobs_at(self, count: int) -> dict[str, float]:
        """Knobs in force when ``count`` steps (or episodes) have been completed."""
        return dict(self.stages[self.stage_at(count)]["knobs"])

    def level_at(self, count: int) -> int:
        """Level in force when ``count`` steps (or episodes) have been completed."""
        return self.stages[self.stage_at(count)]["level"]

    def knobs(self) -> dict[str, float]:
        return dict(self.stages[self._host_stage]["knobs"])

    def advance(self, steps: int = 1) -> None:
        super().advance(steps)
        if self.unit == "steps":
            stage = self.stage_at(self.steps)
            if stage != self._host_stage:
                self.stage.fill_(stage)
                self._host_stage = stage
                self._fire(stage)

    def update(
        self, stats: SuccessStats, levels: torch.Tensor, success: torch.Tensor, done: torch.Tensor
    ) -> None:
        if self.unit == "episodes":
            self.episodes = self.episodes + done.sum()
            self.stage = torch.searchsorted(self._bounds, self.episodes.reshape(1), right=True).reshape(())

    def sync(self) -> None:
        stage = int(self.stage)
        if stage != self._host_stage:
            self._host_stage = stage
            self._fire(stage)

    def probabilities(self) -> torch.Tensor:
        return self._one_hot(self.level())

    def level(self) -> torch.Tensor:
        return self._levels.index_select(0, self.stage.reshape(1)).reshape(())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._host_stage = int(self.stage)
        self._fire(self._host_stage)

    def _fire(self, stage: int) -> None:
        if self.on_stage is not None:
            self.on_stage(dict(self.stages[stage]["knobs"]))
