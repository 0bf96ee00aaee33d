"""RecallTask: the level ladder, generator and oracle of one recall family, and its supervised sampler.

    task = RecallTask("associative", level="kv4-v16-q4-t16")
    batch = task.sample_batch(64, device="cuda")       # tokens, targets, loss_mask (True on answers)

The task's *capacity* — the longest sequence, the most answers and the answer alphabet (its
``action_token_ids``) — is fixed by the ladder it is built with, because environment spaces are sized from
it. A custom level set later must fit in it; build the task (or env) with ``levels=[..., custom]`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from envs.common.task import LevelLike, SupervisedBatch, Task, levels_from_spec
from envs.recall.episode import EpisodeBatch, lookup
from envs.recall.families import get_family
from envs.recall.tokens import (
    COUNT_BASE,
    FILL,
    MAX_REPEATS,
    NUM_SYMBOLS,
    PAD,
    SEP,
    VOCAB_SIZE,
    describe_tokens,
)
from foundation.device import resolve_device


class RecallTask(Task):
    """One recall family (``copy``, ``repeat_copy``, ``associative`` or ``needle``) at a level."""

    def __init__(self, family: str, levels: Sequence[Any] | None = None, level: LevelLike = 0):
        self.family = get_family(family)
        self.level_cls = self.family.level_cls
        super().__init__(levels, level)
        initial = list(self.ladder)
        self._action_token_ids = sorted(set().union(*(set(lv.answer_tokens) for lv in initial)))
        self.max_length: int = max(lv.sequence_length for lv in initial)
        self.max_answers: int = max(lv.num_answers for lv in initial)
        self._tables: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def from_spec(cls, family: str, spec: Sequence[Any] | None, level: LevelLike = 0) -> RecallTask:
        """The task a config describes: ``spec`` lists names from the family's default ladder or field
        mappings of its level class; None is the default ladder."""
        fam = get_family(family)
        return cls(family, levels_from_spec(spec, fam.default_levels(), fam.level_cls, family), level)

    def default_levels(self) -> list[Any]:
        """The family's documented default ladder, easiest first."""
        return self.family.default_levels()

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    def token_ids(self) -> list[int]:
        """Every id this task's sequences can hold (a compact vocabulary, ``backbone.compact_vocab``): the
        symbols below the largest ``vocab`` of the ladder (all 256 bytes for a family without one, such as
        needle) and the special tokens PAD, SEP, FILL and, with repeat counts, the COUNT tokens."""
        vocab = max(getattr(lv, "vocab", NUM_SYMBOLS) for lv in self.ladder)
        specials = [PAD, SEP, FILL]
        if any(getattr(lv, "has_count", False) for lv in self.ladder):
            specials += range(COUNT_BASE, COUNT_BASE + MAX_REPEATS)
        return sorted({*range(vocab), *specials})

    @property
    def pad_id(self) -> int:
        return PAD

    @property
    def action_token_ids(self) -> list[int]:
        """Answer tokens in action order: action ``a`` writes token ``action_token_ids[a]``."""
        return list(self._action_token_ids)

    # ------------------------------------------------------------------ levels
    def resolve_level(self, level: LevelLike) -> int:
        """Ladder index of ``level``; a custom level is checked against the capacity, then appended."""
        if isinstance(level, int | str):
            return self.ladder.index(level)
        candidate = level if isinstance(level, self.level_cls) else self.ladder.coerce(level)
        self.check_fits(candidate)
        return self.ladder.index(candidate)

    def check_fits(self, level: Any) -> None:
        """Raise a ValueError unless ``level`` fits the spaces sized from the task's initial ladder."""
        fix = "build the task or env with levels=[..., this level] so its spaces are sized for it"
        extra = sorted(set(level.answer_tokens) - set(self._action_token_ids))
        if extra:
            raise ValueError(
                f"Level {level.name!r} answers with tokens {extra[:8]} outside this task's action tokens "
                f"(ids {self._action_token_ids[0]}..{self._action_token_ids[-1]}); {fix}."
            )
        if level.sequence_length > self.max_length or level.num_answers > self.max_answers:
            raise ValueError(
                f"Level {level.name!r} needs {level.sequence_length} tokens and {level.num_answers} answers, "
                f"more than this task's {self.max_length} and {self.max_answers}; {fix}."
            )

    def set_level(self, level: LevelLike) -> None:
        """Move the task to ``level`` (index, name, level object or field mapping)."""
        self.level_index = self.resolve_level(level)

    def param_table(self, device: torch.device) -> torch.Tensor:
        """(num_levels, P) float32 generator parameters of every ladder level, cached on ``device``."""
        table = self._tables.get(device)
        if table is None or table.shape[0] != len(self.ladder):
            table = torch.tensor([lv.params() for lv in self.ladder], dtype=torch.float32, device=device)
            self._tables[device] = table
        return table

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        level_ids: torch.Tensor,
        generator: torch.Generator | None = None,
        width: int | None = None,
        answers: int | None = None,
    ) -> EpisodeBatch:
        """Episodes at per-row ladder indices ``level_ids`` (on their device), padded to ``width`` tokens
        and ``answers`` answer slots (defaults: the task's ``max_length`` and ``max_answers``, so any mix
        of levels batches). The random draws depend on both, so equal seeds and sizes give equal episodes.
        """
        params = lookup(self.param_table(level_ids.device), level_ids)
        width = self.max_length if width is None else width
        answers = self.max_answers if answers is None else answers
        return self.family.generate(params, width, answers, generator, list(self.ladder))

    def sample_batch(
        self,
        batch_size: int,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        level: LevelLike | None = None,
    ) -> SupervisedBatch:
        """A next-token batch at ``level`` (default: the current one); ``loss_mask`` marks answer tokens.

        Tokens are generated on the generator's device (CPU without one) and moved to ``device``.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        index = self.level_index if level is None else self.resolve_level(level)
        chosen = self.ladder[index]
        where = generator.device if generator is not None else torch.device("cpu")
        target = where if device is None else resolve_device(device)
        ids = torch.full((batch_size,), index, dtype=torch.long, device=where)
        params = lookup(self.param_table(where), ids)
        episodes = self.family.generate(
            params, chosen.sequence_length, chosen.num_answers, generator, [chosen]
        )
        return episodes.supervised().to(target)

    def oracle_next_token(self, prefix: Sequence[int]) -> int:
        """The correct answer token after an observation prefix ending where an answer is due."""
        return self.family.oracle(prefix)

    def describe(self, tokens: Sequence[int]) -> str:
        """Readable text of ``tokens`` (bytes as text for needle, symbol ids otherwise)."""
        return describe_tokens([t for t in tokens if int(t) != PAD], as_bytes=self.family.text_tokens)
