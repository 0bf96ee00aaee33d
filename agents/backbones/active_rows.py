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
import torch.nn.functional as F

ROW_BUCKET = 16  # the grid's width is a multiple of this, so the gathered shapes repeat across passes
GRID_STEP = 8  # a chunk grid's width is a multiple of this (few distinct shapes, little padding)


class ActiveRows(NamedTuple):
    """Running positions per batch row: ``flat`` (B, A) indexes the flattened (B * T + 1) rows (B * T is
    the scratch row padding writes to), ``pos`` (B, A) is each entry's position in its sequence (0 for
    padding), ``valid`` (B, A) marks real entries and ``count`` is how many there are in all. ``last`` is
    the largest running position (-1: none). For a memory that works in chunks of ``chunk`` positions
    (the first one ``offset`` positions short), ``grid`` groups the running positions by chunk
    (``chunk_grid``), computed once for every block and pass that runs on these rows (``chunk`` 0: none)."""

    flat: torch.Tensor
    pos: torch.Tensor
    valid: torch.Tensor
    count: int
    last: int = -1
    chunk: int = 0
    offset: int = 0
    grid: ChunkGrid | None = None

    @staticmethod
    def from_mask(running: torch.Tensor, chunk: int = 0, offset: int = 0) -> ActiveRows:
        """Pack the positions where ``running`` (B, T) is true, in sequence order per row; with ``chunk``,
        also count them per chunk (chunk boundaries at ``chunk - offset``, ``2 chunk - offset``, ...)."""
        b, t = running.shape
        per_row = running.sum(dim=1)
        positions = torch.arange(t, device=running.device)
        stats = [per_row.max(), per_row.sum(), torch.where(running, positions, -1).amax()]
        if chunk:
            padded = F.pad(running.long(), (offset, (-(offset + t)) % chunk))
            stats.append(padded.view(b, -1, chunk).sum(-1).amax())
        most, total, last, *in_chunk = torch.stack(stats).tolist() if b * t else (0, 0, -1)  # one sync
        width = max(most, 1)
        bucket = min(ROW_BUCKET, 1 << (width - 1).bit_length())  # powers of two below ROW_BUCKET
        width = min(-(-width // bucket) * bucket, max(t, 1))
        order = torch.argsort((~running).to(torch.int8), dim=1, stable=True)[:, :width]
        valid = torch.arange(width, device=running.device)[None, :] < per_row[:, None]
        pos = torch.where(valid, order, torch.zeros_like(order))
        base = torch.arange(b, device=running.device)[:, None] * t
        flat = torch.where(valid, base + order, torch.full_like(order, b * t))
        rows = ActiveRows(flat, pos, valid, total, last)
        if not in_chunk:
            return rows
        grid = chunk_grid(rows, chunk, offset, max((offset + last) // chunk + 1, 1), in_chunk[0])
        return rows._replace(chunk=chunk, offset=offset, grid=grid)


class ChunkGrid(NamedTuple):
    """The running positions regrouped by the chunk they fall in, for a memory that reads each chunk with
    that chunk's own weights: ``index`` (B, chunks * width) holds, for each cell of a (chunks, width) grid
    per batch row, the entry of the rows grid it takes (A, one past the rows grid: an empty cell), and
    ``slot`` (B, A) each entry's cell (padding entries: cell 0)."""

    index: torch.Tensor
    slot: torch.Tensor
    chunks: int
    width: int


def chunk_grid(rows: ActiveRows, chunk: int, offset: int, chunks: int, most: int | None = None) -> ChunkGrid:
    """Group ``rows`` into ``chunks`` chunks of ``chunk`` positions, position p in chunk
    (p + offset) // chunk (every running position must fall in the first ``chunks``). The grid is as wide
    as the fullest (row, chunk), ``most`` (counted here, one host sync, when not given), rounded up to a
    multiple of ``GRID_STEP`` (at most ``chunk``)."""
    b, a = rows.pos.shape
    device = rows.pos.device
    within = torch.where(rows.valid, (rows.pos + offset) // chunk, chunks)  # padding: a chunk past the grid
    counts = torch.zeros(b, chunks + 1, dtype=torch.long, device=device)
    counts.scatter_add_(1, within, torch.ones_like(within))
    if most is None:
        most = int(counts[:, :chunks].amax()) if chunks else 0
    width = min(chunk, -(-max(most, 1) // GRID_STEP) * GRID_STEP)
    entries = torch.arange(a, device=device)[None, :].expand(b, a)
    rank = entries - (counts.cumsum(1) - counts).gather(1, within)
    cell = torch.where(rows.valid, within * width + rank, chunks * width + entries)  # padding: own scratch
    index = torch.full((b, chunks * width + a), a, dtype=torch.long, device=device)
    index.scatter_(1, cell, entries)
    return ChunkGrid(index[:, : chunks * width], torch.where(rows.valid, cell, 0), chunks, width)


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
