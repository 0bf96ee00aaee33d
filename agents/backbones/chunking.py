"""Chunk bookkeeping shared by the memories that write once per chunk (external, Titans).

Such a memory is written at absolute positions that are multiples of the chunk length. When a stream is fed
in pieces, the inputs since the last boundary wait in the state ("pending") and are prepended to the next
piece, so every piece sees the same chunk boundaries as the whole sequence would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prepend_pending(x: torch.Tensor, pending: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """(pending + x in float32, number of pending positions to drop from the outputs)."""
    xf = x.float()
    if pending is None or pending.shape[1] == 0:
        return xf, 0
    return torch.cat((pending.to(xf.dtype), xf), dim=1), pending.shape[1]


def pad_to_chunks(x: torch.Tensor, chunk: int) -> torch.Tensor:
    """(B, L, D) -> (B, ceil(L / chunk), chunk, D), zero-padded at the end."""
    b, length, d = x.shape
    pad = (-length) % chunk
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    return x.view(b, -1, chunk, d)
