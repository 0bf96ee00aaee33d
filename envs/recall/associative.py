"""Multi-query associative recall (MQAR, as in the Zoology benchmark), generator and oracle.

    k_1 v_1 k_2 v_2 .. k_n v_n  FILL .. FILL  k_a v_a  k_b v_b ..     (answers: the queried values)

Keys are distinct, drawn from the lower half of the vocabulary; values from the upper half, so a key is
never mistaken for a value. ``queries`` distinct keys are asked, in random order, after a blank gap that
brings the sequence to ``length`` tokens. Levels grow the pairs, the vocabulary and the length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from envs.recall.episode import EpisodeBatch, answer_positions, uniform_below
from envs.recall.levels import MAX_SEQUENCE_LENGTH, check_int
from envs.recall.tokens import FILL, NUM_SYMBOLS, PAD

_MAX_KEYS = NUM_SYMBOLS // 2


@dataclass(frozen=True)
class AssociativeLevel:
    """``pairs`` key-value pairs over ``vocab`` symbols, ``queries`` of them asked; ``length`` tokens."""

    name: str
    pairs: int
    vocab: int
    queries: int
    length: int

    def __post_init__(self) -> None:
        check_int(self, "vocab", 4, NUM_SYMBOLS)
        check_int(self, "pairs", 1, self.vocab // 2)
        check_int(self, "queries", 1, self.pairs)
        check_int(self, "length", 2 * (self.pairs + self.queries), MAX_SEQUENCE_LENGTH)

    @property
    def sequence_length(self) -> int:
        return self.length

    @property
    def num_answers(self) -> int:
        return self.queries

    @property
    def answer_tokens(self) -> range:
        return range(self.vocab)

    def params(self) -> list[float]:
        return [self.pairs, self.vocab, self.queries, self.length]


def associative_levels() -> list[AssociativeLevel]:
    """Default ladder: 1..64 pairs, vocabulary 4..256, 64..512 tokens for the larger levels."""
    sizes = [
        (1, 4, 1, 4),
        (2, 8, 2, 8),
        (4, 16, 4, 16),
        (4, 32, 4, 64),
        (8, 64, 8, 64),
        (8, 64, 4, 128),
        (16, 128, 16, 128),
        (16, 128, 8, 256),
        (32, 256, 32, 256),
        (64, 256, 64, 512),
    ]
    return [AssociativeLevel(f"kv{n}-v{v}-q{q}-t{t}", n, v, q, t) for n, v, q, t in sizes]


def generate_associative(
    params: torch.Tensor, width: int, max_answers: int, generator: torch.Generator | None
) -> EpisodeBatch:
    """Episodes for per-row ``params`` (B, 4) = (pairs, vocab, queries, length), padded to ``width``."""
    device = params.device
    pairs, vocab, queries, length = params.long().unbind(-1)
    batch = params.shape[0]
    half = vocab // 2
    slots = torch.arange(_MAX_KEYS, device=device)
    # A random permutation of the allowed keys (and of the pair indices) per row: argsort of noise.
    noise = torch.rand(batch, 2, _MAX_KEYS, generator=generator, device=device)
    keys = torch.where(slots < half.unsqueeze(1), noise[:, 0], 2.0).argsort(dim=1)
    asked = torch.where(slots < pairs.unsqueeze(1), noise[:, 1], 2.0).argsort(dim=1)
    values = half.unsqueeze(1) + uniform_below(vocab - half, (batch, _MAX_KEYS), generator, device)

    j = torch.arange(width, device=device).expand(batch, width)
    query_start = (length - 2 * queries).unsqueeze(1)
    in_pairs = j < 2 * pairs.unsqueeze(1)
    in_queries = (j >= query_start) & (j < length.unsqueeze(1))
    query_offset = (j - query_start).clamp(min=0)
    pair = torch.where(in_queries, asked.gather(1, (query_offset // 2).clamp(max=_MAX_KEYS - 1)), j // 2)
    pair = pair.clamp(max=_MAX_KEYS - 1)
    is_key = torch.where(in_queries, query_offset % 2 == 0, j % 2 == 0)
    symbol = torch.where(is_key, keys.gather(1, pair), values.gather(1, pair))
    blank = torch.where(j < length.unsqueeze(1), FILL, PAD)
    tokens = torch.where(in_pairs | in_queries, symbol, blank)
    positions = answer_positions(length - 2 * queries + 1, queries, 2, max_answers, width)
    return EpisodeBatch(tokens, positions, queries, length)


def associative_oracle(prefix: Sequence[int]) -> int:
    """The value of the key that ends ``prefix``, looked up in the key-value block at its start."""
    prefix = [int(t) for t in prefix]
    key = prefix[-1]
    for i in range(0, len(prefix) - 1, 2):
        if prefix[i] == key:
            return prefix[i + 1]
        if prefix[i] >= NUM_SYMBOLS:
            break
    raise ValueError(f"The key {key} that ends the prefix does not occur in its key-value block.")
