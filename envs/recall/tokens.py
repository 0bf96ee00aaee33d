"""The recall token vocabulary, shared by every recall family.

Ids 0..255 are data symbols; the needle family uses them as raw bytes, so its sequences read like the
generation family's byte tokens. Special tokens follow:

    PAD (256)            right padding of observations and batches
    SEP (257)            copy / repeat-copy delimiter between the sequence and its copy
    FILL (258)           associative recall: the blank gap between the key-value block and the queries
    COUNT_1..COUNT_16    repeat-copy: how many times to write the sequence back (259..274)
"""

from __future__ import annotations

from collections.abc import Sequence

NUM_SYMBOLS = 256
PAD = 256
SEP = 257
FILL = 258
COUNT_BASE = 259
MAX_REPEATS = 16
VOCAB_SIZE = COUNT_BASE + MAX_REPEATS

_SPECIAL_NAMES = {PAD: "<pad>", SEP: "<sep>", FILL: "<fill>"}


def count_token(repeats: int) -> int:
    """The token announcing ``repeats`` copies in repeat-copy."""
    if not 1 <= repeats <= MAX_REPEATS:
        raise ValueError(f"repeats must lie in [1, {MAX_REPEATS}], got {repeats}.")
    return COUNT_BASE + repeats - 1


def describe_tokens(tokens: Sequence[int], as_bytes: bool = False) -> str:
    """Human-readable text of a token sequence: bytes as text (``as_bytes``) or symbols as numbers."""
    parts: list[str] = []
    for token in tokens:
        token = int(token)
        if token < NUM_SYMBOLS:
            parts.append(bytes([token]).decode("latin-1") if as_bytes else str(token))
        elif token >= COUNT_BASE:
            parts.append(f"<x{token - COUNT_BASE + 1}>")
        else:
            parts.append(_SPECIAL_NAMES.get(token, f"<{token}>"))
    return ("" if as_bytes else " ").join(parts)
