"""The positions that still compute in a refinement pass once ACT has halted others, as gather indices.

Every row of the batch keeps its own set of running positions; ``ActiveRows`` packs them to the left of a
(B, A) grid, A the largest count rounded up to a power of two, or past ``ROW_BUCKET`` to a multiple of it
(few distinct shapes), padding pointing at a scratch row past the end of the flattened (B * T) positions.
Gathering through it gives (B, A, D) tensors that attention, the feed-forward and the projections run on,
so a pass costs what its running tokens cost; scattering writes the results back and drops the padding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

ROW_BUCKET = 16  # the grid's width is a multiple of this, so the gathered shapes repeat across passes


class ActiveRows(NamedTuple):
    """Running positions per batch row: ``flat`` (B, A) indexes the flattened (B * T + 1) rows (B * T is
    the scratch row padding writes to), ``pos`` (B, A) is each entry's position in its sequence (0 for
    padding), ``valid`` (B, A) marks real entries and ``count`` is how many there are in all."""

    flat: torch.Tensor
    pos: torch.Tensor
    valid: torch.Tensor
    count: int

    @staticmethod
    def from_mask(running: torch.Tensor) -> ActiveRows:
        """Pack the positions where ``running`` (B, T) is true, in sequence order per row."""
        b, t = running.shape
        per_row = running.sum(dim=1)
        most, total = torch.stack((per_row.max(), per_row.sum())).tolist() if b * t else (0, 0)  # one sync
        width = max(most, 1)
        bucket = min(ROW_BUCKET, 1 << (width - 1).bit_length())  # powers of two below ROW_BUCKET
        width = min(-(-width // bucket) * bucket, max(t, 1))
        order = torch.argsort((~running).to(torch.int8), dim=1, stable=True)[:, :width]
        valid = torch.arange(width, device=running.device)[None, :] < per_row[:, None]
        pos = torch.where(valid, order, torch.zeros_like(order))
        base = torch.arange(b, device=running.device)[:, None] * t
        flat = torch.where(valid, base + order, torch.full_like(order, b * t))
        return ActiveRows(flat, pos, valid, total)


def gather_rows(full: torch.Tensor, rows: ActiveRows) -> torch.Tensor:
    """(B, T, D) -> (B, A, D): the running positions' vectors (zeros at padding)."""
    b, t, d = full.shape
    extended = torch.cat((full.reshape(b * t, d), full.new_zeros(1, d)))
    return extended[rows.flat]


def scatter_rows(full: torch.Tensor, rows: ActiveRows, values: torch.Tensor) -> torch.Tensor:
    """A copy of ``full`` (B, T, D) with the running positions replaced by ``values`` (B, A, D)."""
    b, t, d = full.shape
    extended = torch.cat((full.reshape(b * t, d), full.new_zeros(1, d)))
    extended = extended.index_copy(0, rows.flat.reshape(-1), values.reshape(-1, d).to(full.dtype))
    return extended[: b * t].view(b, t, d)
