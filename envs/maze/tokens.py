"""The maze token language shared by ``MazeTask.sample_batch`` and the envs' ``tokens`` observations.

A sequence reads: one token per cell (row-major, ``h*w`` tokens), then the start as a row token and a
column token, the goal likewise, a separator, then one token per move, and EOS once the goal is reached:

    [cell]*h*w  ROW(sr) COL(sc)  ROW(gr) COL(gc)  SEP  MOVE(a1) ... MOVE(aL)  EOS

A cell token is ``CELL0 + passages`` (the 4 open-direction bits, or 16 for a wall cell), so an 8x8 maze
needs 69 prefix tokens. The vocabulary is fixed (it covers sizes up to 128), so one model reads every level.
"""

from __future__ import annotations

import torch

from envs.common.task import SupervisedBatch
from envs.maze.grid import MazeBatch, oracle_moves
from envs.maze.levels import MAX_SIZE, MazeLevel

PAD = 0
CELL0 = 1  # 1..17
SEP = 18
MOVE0 = 19  # 19..22: up, right, down, left
EOS = 23
ROW0 = 24
COL0 = ROW0 + MAX_SIZE
VOCAB_SIZE = COL0 + MAX_SIZE
ACTION_TOKEN_IDS = [MOVE0 + a for a in range(4)]
PREFIX_EXTRA = 5


def prefix_length(level: MazeLevel) -> int:
    """Number of tokens before the first move: cells, start, goal and the separator."""
    return level.cells + PREFIX_EXTRA


def encode_prefix(mazes: MazeBatch) -> torch.Tensor:
    """(n, h*w + 5) int64: the maze, start, goal and separator tokens."""
    if not (1 <= mazes.height <= MAX_SIZE and 1 <= mazes.width <= MAX_SIZE):
        raise ValueError(
            f"Mazes of {mazes.height}x{mazes.width} cells have no tokens: the vocabulary has row and column "
            f"tokens for sizes up to {MAX_SIZE}x{MAX_SIZE} (MazeLevel's cap)."
        )
    w = mazes.width
    sr, sc = mazes.start // w, mazes.start % w
    gr, gc = mazes.goal // w, mazes.goal % w
    places = torch.stack([ROW0 + sr, COL0 + sc, ROW0 + gr, COL0 + gc, torch.full_like(sr, SEP)], dim=1)
    return torch.cat([CELL0 + mazes.passages.long(), places], dim=1)


def supervised_batch(mazes: MazeBatch, horizons: int = 1) -> SupervisedBatch:
    """Token sequences of the oracle's shortest paths with K-step targets (MLM-U style).

    ``targets[b, t, k]`` is the token ``k + 1`` places after position ``t`` (so ``targets[..., 0]`` is the
    next token: the next move, or EOS after the last move); the loss counts from the separator on, while
    the target still lies within the path and its EOS. ``horizons == 1`` gives (B, T) targets.
    """
    if not isinstance(horizons, int) or horizons < 1:
        raise ValueError(f"horizons must be an int >= 1, got {horizons!r}.")
    moves, lengths = oracle_moves(mazes)
    n, steps = moves.shape
    prefix = encode_prefix(mazes)
    p = prefix.shape[1]
    total = p + steps + 1
    device = prefix.device
    tokens = torch.full((n, total + horizons), PAD, dtype=torch.long, device=device)
    tokens[:, :p] = prefix
    tokens[:, p : p + steps] = torch.where(moves >= 0, MOVE0 + moves, PAD)
    tokens.scatter_(1, (p + lengths)[:, None], EOS)
    position = torch.arange(total, device=device)
    target_pos = position[:, None] + 1 + torch.arange(horizons, device=device)  # (T, K)
    targets = tokens[:, target_pos]  # (n, T, K)
    mask = (position >= p - 1)[None, :, None] & (target_pos[None] <= (p + lengths)[:, None, None])
    targets = targets.masked_fill(~mask, PAD)
    tokens = tokens[:, :total]
    if horizons == 1:
        return SupervisedBatch(tokens, targets[..., 0], mask[..., 0])
    return SupervisedBatch(tokens, targets, mask)
