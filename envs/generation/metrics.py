"""Language-model metrics on a corpus split: bits per character (byte), and distinct-n across a batch."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import torch
import torch.nn.functional as F

from envs.generation.corpus import Corpus, default_corpus
from envs.generation.tokens import NUM_BYTES, PAD_ID, corpus_bytes

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def bits_per_char(
    model: LogitsFn | torch.nn.Module,
    corpus: Corpus | None = None,
    split: str = "validation",
    context: int = 256,
    max_bytes: int | None = None,
    stride: int | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> float:
    """Bits per character of ``model`` on a corpus split (a character is a byte, the enwik8 convention).

    ``model`` maps tokens (B, T) to logits (B, T, V >= 256), or is a MindGym Backbone (its ``.logits`` are
    read). Windows of ``context`` bytes advance by ``stride`` (default context // 2); every byte after the
    first window is scored once, with at least ``context - stride`` bytes of context. ``max_bytes`` caps
    how much of the split is read (from its start, so the number is comparable across runs).
    """
    if not isinstance(context, int) or context < 2:
        raise ValueError(f"context must be an int >= 2, got {context!r}.")
    stride = context // 2 if stride is None else stride
    if not isinstance(stride, int) or not 1 <= stride <= context:
        raise ValueError(f"stride must be an int in [1, context={context}], got {stride!r}.")
    if device is None:
        params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
        device = params[0].device if params else torch.device("cpu")
    corpus = corpus if corpus is not None else default_corpus()
    data = corpus_bytes(corpus.text(split), device).long()
    if max_bytes is not None:
        data = data[:max_bytes]
    if len(data) < 2:
        raise ValueError(f"The {split!r} split holds {len(data)} byte(s); bits_per_char needs at least 2.")
    length = min(context, len(data) - 1)
    starts = list(range(0, len(data) - 1 - length + 1, stride))
    if starts[-1] != len(data) - 1 - length:
        starts.append(len(data) - 1 - length)
    # each window scores only the bytes that earlier windows did not: targets from begin on
    begins = [0] + [max(prev + length - start, 0) for prev, start in pairwise(starts)]
    positions = torch.arange(length, device=device)
    total_bits = torch.zeros((), dtype=torch.float64, device=device)
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        for i in range(0, len(starts), batch_size):
            chunk = torch.tensor(starts[i : i + batch_size], device=device)
            windows = data[chunk[:, None] + torch.arange(length + 1, device=device)]
            logits = _logits(model, windows[:, :-1])
            if logits.shape[:2] != windows[:, :-1].shape or logits.shape[-1] < NUM_BYTES:
                raise ValueError(
                    f"The model returned logits of shape {tuple(logits.shape)} for tokens of shape "
                    f"{tuple(windows[:, :-1].shape)}; bits_per_char needs (B, T, V) with V >= {NUM_BYTES}."
                )
            nll = -F.log_softmax(logits.float(), dim=-1).gather(-1, windows[:, 1:, None]).squeeze(-1)
            scored = positions >= torch.tensor(begins[i : i + batch_size], device=device)[:, None]
            total_bits += (nll * scored).sum(dtype=torch.float64)
    finally:
        if was_training:
            model.train()
    total_bytes = sum(length - begin for begin in begins)
    return float(total_bits) / math.log(2) / total_bytes


def distinct_n(tokens: torch.Tensor, n: int = 4, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Distinct-n across a batch of texts: unique n-grams over all rows / n-grams in all rows (0-d tensor).

    ``tokens`` (B, T) holds byte ids, right-padded with PAD_ID or cut by ``lengths`` (B,). Runs on the
    tensors' device without a host sync.
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}.")
    if not isinstance(n, int) or not 1 <= n <= 7:
        raise ValueError(f"n must be an int in [1, 7], got {n!r}.")
    batch, length = tokens.shape
    if length < n:
        return torch.zeros((), device=tokens.device)
    columns = torch.arange(length, device=tokens.device)
    valid = (tokens >= 0) & (tokens < NUM_BYTES) & (tokens != PAD_ID)
    if lengths is not None:
        valid = valid & (columns < lengths.to(tokens.device)[:, None])
    keys = torch.zeros(batch, length - n + 1, dtype=torch.long, device=tokens.device)
    ok = torch.ones_like(keys, dtype=torch.bool)
    for j in range(n):
        keys = keys * NUM_BYTES + tokens[:, j : length - n + 1 + j].clamp(0, NUM_BYTES - 1)
        ok = ok & valid[:, j : length - n + 1 + j]
    flat = torch.where(ok, keys, -1).flatten().sort().values
    new = torch.ones_like(flat, dtype=torch.bool)
    new[1:] = flat[1:] != flat[:-1]
    unique = (new & (flat >= 0)).sum()
    return unique / ok.sum().clamp(min=1)


def _logits(model: LogitsFn | torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    out = model(tokens)
    return out.logits if hasattr(out, "logits") else out
