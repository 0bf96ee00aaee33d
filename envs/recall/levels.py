"""Checks shared by the recall level dataclasses."""

from __future__ import annotations

# The longest episode any recall level may ask for, in tokens: about four times the longest default level
# (needle ctx64k, 65,600 tokens). Every episode is generated in blocks of padded int64 rows, so a cap keeps
# a mistyped level (a copy of length 10**9) from trying to allocate gigabytes; positions are rotary, so
# no model table limits it further.
MAX_SEQUENCE_LENGTH = 2**18


def check_int(level: object, field: str, low: int, high: int | None = None) -> None:
    """Raise a ValueError naming ``field`` unless it is an int in [low, high]."""
    value = getattr(level, field)
    bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{type(level).__name__}.{field} must be an int {bounds}, got {value!r}.")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{type(level).__name__}.{field} must lie in {bounds}, got {value}.")


def check_sequence_length(level: object) -> None:
    """Raise a ValueError naming the level unless its episodes fit in MAX_SEQUENCE_LENGTH tokens.

    Call it after the fields it reads (``sequence_length``) have passed their own checks.
    """
    length = level.sequence_length  # type: ignore[attr-defined]
    name = getattr(level, "name", "")
    if length > MAX_SEQUENCE_LENGTH:
        raise ValueError(
            f"{type(level).__name__} {name!r} needs {length:,} tokens per episode, more than the recall "
            f"cap of {MAX_SEQUENCE_LENGTH:,} (MAX_SEQUENCE_LENGTH); use a shorter level."
        )
