"""Build a schedule from a name and plain keyword arguments (what a Hydra config group holds)."""

from __future__ import annotations

import inspect
from typing import Any

from curricula.adaptive import AdaptiveSchedule, MixtureSchedule
from curricula.learning_progress import LearningProgressSchedule
from curricula.schedules import FixedSchedule, Schedule, StagedSchedule

SCHEDULES: dict[str, type[Schedule]] = {
    "none": FixedSchedule,
    "staged": StagedSchedule,
    "adaptive": AdaptiveSchedule,
    "mixture": MixtureSchedule,
    "learning_progress": LearningProgressSchedule,
}


def build_schedule(name: str, num_levels: int, **kwargs: Any) -> Schedule:
    """A schedule by factory name over a ladder of ``num_levels`` levels.

    ``"staged"`` takes either ``stages=[{"until": n, "level": i, "knobs": {...}}, ...]`` or the arguments
    of :meth:`StagedSchedule.fractions` (``total``, ``bounds``, ``knobs``, ``levels``). OmegaConf
    containers are converted to plain lists and dicts first.
    """
    if name not in SCHEDULES:
        raise ValueError(f"Unknown curriculum schedule {name!r}; use one of {sorted(SCHEDULES)}.")
    kwargs = {key: _plain(value) for key, value in kwargs.items()}
    cls = SCHEDULES[name]
    build = cls.fractions if cls is StagedSchedule and "bounds" in kwargs else cls
    accepted = [p for p in inspect.signature(build).parameters if p not in ("self", "num_levels")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(f"Unknown argument(s) {unknown} for the {name!r} schedule; accepted: {accepted}.")
    return build(num_levels=num_levels, **kwargs)


def _plain(value: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - hydra-core is a dependency
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
