"""Copy and repeat-copy (as in the NTM and DNC papers), generator and oracle.

copy:         x_1 .. x_L  SEP  x_1 .. x_L                      (answers: the second x_1 .. x_L)
repeat_copy:  x_1 .. x_L  SEP  COUNT_N  (x_1 .. x_L) * N       (answers: the N copies)

Symbols are uniform in [0, vocab). Levels grow the length, the vocabulary and the number of repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from envs.recall.episode import EpisodeBatch, answer_positions, uniform_below
from envs.recall.levels import MAX_SEQUENCE_LENGTH, check_int, check_sequence_length
from envs.recall.tokens import COUNT_BASE, MAX_REPEATS, NUM_SYMBOLS, PAD, SEP


@dataclass(frozen=True)
class CopyLevel:
    """Copy ``length`` symbols drawn from ``vocab`` symbols."""

    name: str
    length: int
    vocab: int

    repeats = 1
    has_count = False

    def __post_init__(self) -> None:
        check_int(self, "length", 1, MAX_SEQUENCE_LENGTH)
        check_int(self, "vocab", 2, NUM_SYMBOLS)
        check_sequence_length(self)

    @property
    def sequence_length(self) -> int:
        return self.length * (1 + self.repeats) + 1 + int(self.has_count)

    @property
    def num_answers(self) -> int:
        return self.length * self.repeats

    @property
    def answer_tokens(self) -> range:
        return range(self.vocab)

    def params(self) -> list[float]:
        return [self.length, self.vocab, self.repeats, int(self.has_count)]


@dataclass(frozen=True)
class RepeatCopyLevel(CopyLevel):
    """Write ``length`` symbols from ``vocab`` back ``repeats`` times; the count is given as a token."""

    repeats: int = 2
    has_count = True

    def __post_init__(self) -> None:
        check_int(self, "repeats", 1, MAX_REPEATS)  # first: the length check reads it
        super().__post_init__()


def copy_levels() -> list[CopyLevel]:
    """Default copy ladder: length 1..256, vocabulary 2..64."""
    sizes = [(1, 2), (2, 4), (4, 8), (8, 8), (16, 16), (32, 16), (64, 32), (128, 32), (256, 64)]
    return [CopyLevel(f"len{n}-v{v}", n, v) for n, v in sizes]


def repeat_copy_levels() -> list[RepeatCopyLevel]:
    """Default repeat-copy ladder: length 1..32, vocabulary 2..32, 2..8 repeats."""
    sizes = [(1, 2, 2), (2, 4, 2), (4, 8, 2), (4, 8, 4), (8, 8, 3), (8, 16, 6), (16, 16, 4), (32, 32, 8)]
    return [RepeatCopyLevel(f"len{n}-v{v}-x{r}", n, v, r) for n, v, r in sizes]


def generate_copy(
    params: torch.Tensor,
    width: int,
    max_answers: int,
    generator: torch.Generator | None,
) -> EpisodeBatch:
    """Episodes for per-row ``params`` (B, 4) = (length, vocab, repeats, has_count), padded to ``width``."""
    device = params.device
    length, vocab, repeats, has_count = params.long().unbind(-1)
    batch = params.shape[0]
    symbols = uniform_below(vocab, (batch, width), generator, device)
    j = torch.arange(width, device=device).expand(batch, width)
    start = length + 1 + has_count
    num_answers = length * repeats
    offset = j - start.unsqueeze(1)
    is_answer = (offset >= 0) & (offset < num_answers.unsqueeze(1))
    source = torch.where(is_answer, offset % length.unsqueeze(1), j)
    tokens = torch.where(is_answer | (j < length.unsqueeze(1)), symbols.gather(1, source), PAD)
    tokens = torch.where(j == length.unsqueeze(1), SEP, tokens)
    is_count = (j == (length + 1).unsqueeze(1)) & (has_count == 1).unsqueeze(1)
    tokens = torch.where(is_count, (COUNT_BASE - 1 + repeats).unsqueeze(1), tokens)
    positions = answer_positions(start, num_answers, 1, max_answers, width)
    return EpisodeBatch(tokens, positions, num_answers, start + num_answers)


def copy_oracle(prefix: Sequence[int]) -> int:
    """The next answer token, read from an observation prefix that ends inside the answer section."""
    prefix = [int(t) for t in prefix]
    if SEP not in prefix:
        raise ValueError("The prefix holds no SEP token, so no answer is due yet.")
    sep = prefix.index(SEP)
    start = sep + 1 + int(len(prefix) > sep + 1 and prefix[sep + 1] >= COUNT_BASE)
    if len(prefix) < start:
        raise ValueError("The prefix ends before the answer section starts.")
    return prefix[(len(prefix) - start) % sep]
