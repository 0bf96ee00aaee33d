"""Byte-level tokens: ids 0..255 are the UTF-8 bytes, 256 pads a right-padded window.

An action of the generation env is a byte, so the action's token id is the byte itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

NUM_BYTES = 256
PAD_ID = 256
VOCAB_SIZE = 257


def encode(text: str | bytes, device: str | torch.device | None = None) -> torch.Tensor:
    """UTF-8 bytes of ``text`` as a 1-D int64 tensor of token ids."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device=device, dtype=torch.long)


def decode(tokens: torch.Tensor | list[int]) -> str:
    """Text of a 1-D sequence of token ids; pad and other non-byte ids are dropped, bad UTF-8 replaced."""
    ids = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
    return bytes(i for i in ids if 0 <= i < NUM_BYTES).decode("utf-8", errors="replace")


def corpus_bytes(text: str, device: str | torch.device | None = None) -> torch.Tensor:
    """A corpus split as a 1-D uint8 tensor (4x smaller than int64 ids; envs gather prompts from it)."""
    data = bytearray(text.encode("utf-8"))
    return torch.frombuffer(data, dtype=torch.uint8).to(device) if data else torch.zeros(0, dtype=torch.uint8)


def prompt_continuations(
    first_obs: Mapping[str, torch.Tensor], final_obs: Mapping[str, torch.Tensor], count: int
) -> list[tuple[str, str]]:
    """(prompt, continuation) texts of the first ``count`` episodes, from the observations (``tokens``,
    ``length``) at an episode's start and end: the continuation is what the end adds to the prompt."""
    pairs = []
    for i in range(min(count, first_obs["tokens"].shape[0])):
        prompt = decode(first_obs["tokens"][i, : int(first_obs["length"][i])])
        pairs.append((prompt, decode(final_obs["tokens"][i, : int(final_obs["length"][i])])[len(prompt) :]))
    return pairs
