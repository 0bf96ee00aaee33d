"""Which next tokens are legal in a maze token sequence: the rule behind the validity-aware loss.

From the separator on, the token after position t is the next move (or EOS). A move into a wall is
never right, so the maze seed masks such moves before the log-softmax while training (not only when
acting). :func:`allowed_targets` replays each row's moves from its start cell and reads the passages of
the cell reached, all in tensor ops (any device, compiles).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from envs.maze import tokens as tok
from envs.maze.grid import COL_STEP, ROW_STEP


def width_table(shapes: Iterable[tuple[int, int]]) -> list[int]:
    """Index = cell count: the width of the mazes with that many cells, -1 where none (plain ints, so
    a compiled loss builds it as a constant).

    A sequence's cell count is visible (the separator sits at cells + 4), its width is not, so a ladder
    whose levels share a cell count with different widths cannot use the rule."""
    shapes = list(shapes)
    table = [-1] * (max(h * w for h, w in shapes) + 1)
    for h, w in shapes:
        if table[h * w] not in (-1, w):
            raise ValueError(
                f"Levels of {h * w} cells with widths {table[h * w]} and {w}: the validity-aware loss "
                "cannot tell them apart; use levels of distinct cell counts or task.validity_loss=false."
            )
        table[h * w] = w
    return table


def allowed_targets(tokens: torch.Tensor, widths: list[int], vocab_size: int) -> torch.Tensor:
    """(B, T, V) bool: every target allowed, except moves into a wall from each position from the
    separator on (the cell reached after that position's move). ``widths`` is :func:`width_table`'s."""
    b, t = tokens.shape
    widths_t = torch.tensor(widths, device=tokens.device)
    positions = torch.arange(t, device=tokens.device)
    is_sep = tokens == tok.SEP
    sep = torch.where(is_sep.any(dim=1), is_sep.int().argmax(dim=1), torch.full_like(tokens[:, 0], t))
    cells = (sep - 4).clamp(1, len(widths) - 1)
    width = widths_t[cells].clamp_min(1)
    start = tokens.gather(1, (sep - 4).clamp(0, t - 1)[:, None]).squeeze(1)
    start_col = tokens.gather(1, (sep - 3).clamp(0, t - 1)[:, None]).squeeze(1)
    row0, col0 = start - tok.ROW0, start_col - tok.COL0
    action = tokens - tok.MOVE0
    moving = (action >= 0) & (action < 4) & (positions[None] > sep[:, None])
    action = action.clamp(0, 3)
    row_step = torch.tensor(ROW_STEP, device=tokens.device)[action] * moving
    col_step = torch.tensor(COL_STEP, device=tokens.device)[action] * moving
    row = row0[:, None] + row_step.cumsum(dim=1)
    col = col0[:, None] + col_step.cumsum(dim=1)
    cell = (row * width[:, None] + col).clamp(0, t - 1).clamp_max(cells[:, None] - 1).clamp_min(0)
    passages = tokens.gather(1, cell) - tok.CELL0  # 16 (a wall cell) opens no direction
    bits = torch.arange(4, device=tokens.device)
    open_move = ((passages[..., None] >> bits) & 1).bool()  # (B, T, 4)
    active = (positions[None] >= sep[:, None]) & (widths_t[cells] > 0)[:, None]
    allowed = torch.ones(b, t, vocab_size, dtype=torch.bool, device=tokens.device)
    moves = torch.where(active[..., None], open_move, True)
    allowed[..., tok.MOVE0 : tok.MOVE0 + 4] = moves
    return allowed
