"""Needle in a haystack (passkey retrieval), byte level: generator and oracle.

    <filler .. "The secret number is 1453." .. filler>
    "\nQuestion: what is the secret number?\nAnswer: "  1 4 5 3

The haystack is ``context_bytes`` bytes of filler with the needle sentence written over it so that the
sentence starts at byte ``round(depth * (context_bytes - len(needle)))``: depth 0 puts it first, depth 1
ends it at the haystack's end, ``depth=None`` draws a depth per episode. Filler is a random window of the
generation family's embedded corpus (``filler="corpus"``) or random lowercase letters and spaces
(``filler="random"``). Tokens are bytes (ids 0..255), as in the generation family. The answer is the key's
``key_digits`` digits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch

from envs.recall.episode import EpisodeBatch, answer_positions, lookup, uniform_below
from envs.recall.levels import check_int, check_sequence_length
from envs.recall.tokens import NUM_SYMBOLS, PAD

NEEDLE_PREFIX = b"The secret number is "
NEEDLE_SUFFIX = b"."
QUESTION = b"\nQuestion: what is the secret number?\nAnswer: "
DIGITS = b"0123456789"
RANDOM_ALPHABET = b"abcdefghijklmnopqrstuvwxyz "
FILLERS = ("corpus", "random")
MAX_KEY_DIGITS = 16
_NEEDLE_PATTERN = re.compile(re.escape(NEEDLE_PREFIX) + rb"(\d+)" + re.escape(NEEDLE_SUFFIX))


def needle_length(key_digits: int) -> int:
    """Bytes of the needle sentence for a key of ``key_digits`` digits."""
    return len(NEEDLE_PREFIX) + key_digits + len(NEEDLE_SUFFIX)


def needle_offset(context_bytes: int, depth: float, key_digits: int) -> int:
    """Byte at which the needle starts for a fixed ``depth`` (the generator uses the same rule)."""
    return math.floor(depth * (context_bytes - needle_length(key_digits)) + 0.5)


@dataclass(frozen=True)
class NeedleLevel:
    """A key of ``key_digits`` digits hidden at ``depth`` (None: random) in ``context_bytes`` of filler."""

    name: str
    context_bytes: int
    depth: float | None = None
    key_digits: int = 4
    filler: str = "corpus"

    def __post_init__(self) -> None:
        check_int(self, "key_digits", 1, MAX_KEY_DIGITS)
        check_int(self, "context_bytes", needle_length(self.key_digits))
        if self.depth is not None and (
            isinstance(self.depth, bool)
            or not isinstance(self.depth, int | float)
            or not 0 <= self.depth <= 1
        ):
            raise ValueError(
                f"NeedleLevel.depth must be a number in [0, 1] or None (random), got {self.depth!r}."
            )
        if self.filler not in FILLERS:
            raise ValueError(f"NeedleLevel.filler must be one of {list(FILLERS)}, got {self.filler!r}.")
        if self.filler == "corpus" and self.context_bytes > _filler_corpus_bytes().numel():
            raise ValueError(
                f"NeedleLevel.context_bytes={self.context_bytes} exceeds the filler corpus "
                f"({_filler_corpus_bytes().numel()} bytes); use filler='random' for longer contexts."
            )
        check_sequence_length(self)

    @property
    def sequence_length(self) -> int:
        return self.context_bytes + len(QUESTION) + self.key_digits

    @property
    def num_answers(self) -> int:
        return self.key_digits

    @property
    def answer_tokens(self) -> bytes:
        return DIGITS

    def params(self) -> list[float]:
        depth = -1.0 if self.depth is None else float(self.depth)
        return [self.context_bytes, depth, self.key_digits, FILLERS.index(self.filler)]


def _size_name(num_bytes: int) -> str:
    return f"{num_bytes // 1024}k" if num_bytes % 1024 == 0 else str(num_bytes)


def needle_levels() -> list[NeedleLevel]:
    """Default ladder: 64 bytes .. 64 KiB of corpus filler, needle at a random depth, 4-digit key."""
    sizes = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
    return [NeedleLevel(f"ctx{_size_name(n)}", n) for n in sizes]


@cache
def _filler_corpus_bytes() -> torch.Tensor:
    """The embedded corpus' train split as uint8 bytes (CPU; moved to a device on use)."""
    from envs.generation.corpus import default_corpus
    from envs.generation.tokens import corpus_bytes

    text = default_corpus().text("train")
    data = corpus_bytes(text)
    if NEEDLE_PREFIX.decode() in text:
        raise ValueError("The filler corpus contains the needle sentence; use filler='random'.")
    return data


@cache
def _constant(data: bytes, device: torch.device) -> torch.Tensor:
    return torch.tensor(list(data), dtype=torch.long, device=device)


def corpus_filler_on(device: torch.device) -> torch.Tensor:
    """Filler corpus bytes as int64 on ``device`` (cached per device)."""
    return _to_device(_filler_corpus_bytes(), device)


@cache
def _to_device(data: torch.Tensor, device: torch.device) -> torch.Tensor:
    return data.to(device=device, dtype=torch.long)


def generate_needle(
    params: torch.Tensor,
    width: int,
    max_answers: int,
    generator: torch.Generator | None,
    use_corpus: bool = True,
) -> EpisodeBatch:
    """Episodes for per-row ``params`` (B, 4) = (context_bytes, depth or -1, key_digits, filler index).

    ``use_corpus=False`` skips reading the corpus when no row asks for corpus filler.
    """
    device = params.device
    batch = params.shape[0]
    context = params[:, 0].long()
    digits = params[:, 2].long()
    nlen = len(NEEDLE_PREFIX) + digits + len(NEEDLE_SUFFIX)
    random_depth = torch.rand(batch, generator=generator, device=device)
    depth = torch.where(params[:, 1] < 0, random_depth, params[:, 1])
    offset = torch.floor(depth * (context - nlen) + 0.5).long()
    key = uniform_below(torch.full_like(context, 10), (batch, MAX_KEY_DIGITS), generator, device)
    key = key + DIGITS[0]

    j = torch.arange(width, device=device).expand(batch, width)
    alphabet = _constant(RANDOM_ALPHABET, device)
    filler = lookup(
        alphabet, uniform_below(torch.full_like(context, len(alphabet)), (batch, width), generator, device)
    )
    if use_corpus:
        corpus = corpus_filler_on(device)
        start = uniform_below((corpus.numel() - context + 1).clamp(min=1), (batch,), generator, device)
        from_corpus = lookup(corpus, (start.unsqueeze(1) + j).clamp(max=corpus.numel() - 1))
        filler = torch.where((params[:, 3] == FILLERS.index("corpus")).unsqueeze(1), from_corpus, filler)

    inner = j - offset.unsqueeze(1)
    prefix, suffix = _constant(NEEDLE_PREFIX, device), _constant(NEEDLE_SUFFIX, device)
    key_index = (inner - len(NEEDLE_PREFIX)).clamp(0, MAX_KEY_DIGITS - 1)
    needle = torch.where(
        inner < len(NEEDLE_PREFIX),
        lookup(prefix, inner.clamp(0, len(NEEDLE_PREFIX) - 1)),
        torch.where(inner < (nlen - 1).unsqueeze(1), key.gather(1, key_index), suffix[0]),
    )
    in_needle = (inner >= 0) & (inner < nlen.unsqueeze(1))
    tokens = torch.where(in_needle, needle, filler)
    after = j - context.unsqueeze(1)
    question = _constant(QUESTION, device)
    tokens = torch.where(after >= 0, lookup(question, after.clamp(0, len(QUESTION) - 1)), tokens)
    answer_index = (after - len(QUESTION)).clamp(0, MAX_KEY_DIGITS - 1)
    tokens = torch.where(after >= len(QUESTION), key.gather(1, answer_index), tokens)
    length = context + len(QUESTION) + digits
    tokens = torch.where(j < length.unsqueeze(1), tokens, PAD)
    positions = answer_positions(context + len(QUESTION), digits, 1, max_answers, width)
    return EpisodeBatch(tokens, positions, digits, length)


def needle_oracle(prefix: Sequence[int]) -> int:
    """The next key digit: find the needle sentence in the haystack and count the digits already written."""
    data = bytes(int(t) for t in prefix if int(t) < NUM_SYMBOLS)
    asked = data.rfind(QUESTION)
    found = _NEEDLE_PATTERN.search(data, 0, asked if asked >= 0 else len(data))
    if asked < 0 or found is None:
        raise ValueError("The prefix holds no question after a needle sentence, so no answer is due.")
    written = len(data) - asked - len(QUESTION)
    return found.group(1)[written]
