"""Build a schedule from a name and plain keyword arguments (what a Hydra config group holds)."""

from __future__ import annotations

import inspect
from difflib import get_close_matches
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


def build_schedule(name: str, num_levels: int, *, config_key: str | None = None, **kwargs: Any) -> Schedule:
    """A schedule by factory name over a ladder of ``num_levels`` levels.

    ``"staged"`` takes either ``stages=[{"until": n, "level": i, "knobs": {...}}, ...]`` or the arguments
    of :meth:`StagedSchedule.fractions` (``total``, ``bounds``, ``knobs``, ``levels``). OmegaConf
    containers are converted to plain lists and dicts first.

    ``config_key`` (a runner passes ``"curriculum"``) words an unknown name or argument as the overrides
    to type (``curriculum.name=adaptive``, ``curriculum.params.threshold=...``) instead of Python names.
    """
    if name not in SCHEDULES:
        choices = sorted(SCHEDULES)
        if config_key is None:
            raise ValueError(f"Unknown curriculum schedule {name!r}; use one of {choices}.")
        options = ", ".join(f"{config_key}.name={choice}" for choice in choices)
        raise ValueError(f"{config_key}.name={name} is not a curriculum schedule; use one of {options}.")
    kwargs = {key: _plain(value) for key, value in kwargs.items()}
    cls = SCHEDULES[name]
    build = cls.fractions if cls is StagedSchedule and "bounds" in kwargs else cls
    accepted = [p for p in inspect.signature(build).parameters if p not in ("self", "num_levels")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(_unknown_arguments(name, unknown, accepted, config_key))
    return build(num_levels=num_levels, **kwargs)


def _unknown_arguments(name: str, unknown: list[str], accepted: list[str], config_key: str | None) -> str:
    """The message for arguments the ``name`` schedule does not take, with the closest accepted one of each:
    Python keyword names, or ``<config_key>.params.<name>`` overrides when a runner built the schedule."""
    spell = (lambda key: key) if config_key is None else (lambda key: f"{config_key}.params.{key}")
    guesses = []
    for key in unknown:
        close = get_close_matches(key, accepted, n=1)
        if close:
            guesses.append(f"{spell(close[0])} for {spell(key)}")
    hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
    if config_key is None:
        return f"Unknown argument(s) {unknown} for the {name!r} schedule{hint}; accepted: {accepted}."
    given = ", ".join(spell(key) for key in unknown)
    if not accepted:
        return f"{given}: the {name!r} curriculum schedule takes no settings; empty {config_key}.params."
    options = ", ".join(spell(key) for key in accepted)
    return f"{given}: not a setting of the {name!r} curriculum schedule{hint}; it takes {options}."


def _plain(value: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - hydra-core is a dependency
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
