"""The recall families by name: level class, default ladder, batched generator and oracle of each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from envs.recall.associative import (
    AssociativeLevel,
    associative_levels,
    associative_oracle,
    generate_associative,
)
from envs.recall.copy_task import (
    CopyLevel,
    RepeatCopyLevel,
    copy_levels,
    copy_oracle,
    generate_copy,
    repeat_copy_levels,
)
from envs.recall.episode import EpisodeBatch
from envs.recall.needle import NeedleLevel, generate_needle, needle_levels, needle_oracle

Generator = Callable[[torch.Tensor, int, int, torch.Generator | None, Sequence[Any]], EpisodeBatch]


@dataclass(frozen=True)
class Family:
    """Everything family-specific that RecallTask needs.

    generate(params, width, max_answers, generator, levels): episodes for per-row level ``params`` (B, P)
    padded to ``width`` tokens; ``levels`` are the levels that may occur in the batch.
    oracle(prefix): the correct next answer token after an observation prefix that ends where one is due.
    """

    name: str
    level_cls: type
    default_levels: Callable[[], list[Any]]
    generate: Generator
    oracle: Callable[[Sequence[int]], int]
    text_tokens: bool = False


def _needle(params, width, max_answers, generator, levels) -> EpisodeBatch:
    uses_corpus = any(level.filler == "corpus" for level in levels)
    return generate_needle(params, width, max_answers, generator, use_corpus=uses_corpus)


FAMILIES: dict[str, Family] = {
    "copy": Family(
        "copy", CopyLevel, copy_levels, lambda p, w, a, g, _: generate_copy(p, w, a, g), copy_oracle
    ),
    "repeat_copy": Family(
        "repeat_copy",
        RepeatCopyLevel,
        repeat_copy_levels,
        lambda p, w, a, g, _: generate_copy(p, w, a, g),
        copy_oracle,
    ),
    "associative": Family(
        "associative",
        AssociativeLevel,
        associative_levels,
        lambda p, w, a, g, _: generate_associative(p, w, a, g),
        associative_oracle,
    ),
    "needle": Family("needle", NeedleLevel, needle_levels, _needle, needle_oracle, text_tokens=True),
}


def get_family(name: str) -> Family:
    """The family called ``name``; a clear ValueError for anything else."""
    if name not in FAMILIES:
        raise ValueError(f"Unknown recall family {name!r}; use one of {list(FAMILIES)}.")
    return FAMILIES[name]
