"""Checks shared by the recall level dataclasses."""

from __future__ import annotations


def check_int(level: object, field: str, low: int, high: int | None = None) -> None:
    """Raise a ValueError naming ``field`` unless it is an int in [low, high]."""
    value = getattr(level, field)
    bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{type(level).__name__}.{field} must be an int {bounds}, got {value!r}.")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{type(level).__name__}.{field} must lie in {bounds}, got {value}.")
