"""Exact-path accuracy from one forward pass: on perfect mazes it equals a greedy rollout.

A perfect maze (DFS, Prim, Wilson, recursive division: a spanning tree) has exactly one shortest path
between two cells, so a greedy walk is optimal if and only if, at every cell of that path, its arg-max
move is the path's next move. Before its first mistake the walk has seen exactly the oracle's moves, so
its logits there are those of the oracle path read in one teacher-forced pass (up to floating-point
ties). :func:`exact_paths` therefore scores a whole batch of fresh mazes with one forward pass instead
of one step per move; ``runners.maze`` uses it under ``task.eval_mode=teacher_forced`` and keeps the
rollout (which also measures success and draws the walks) as the ground truth. Open grids have ties
between shortest paths and always go through the rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from envs.common.task import SupervisedBatch
from envs.maze import tokens as tok
from envs.maze.grid import MazeBatch, action_bits, oracle_moves
from envs.maze.levels import PERFECT_GENERATORS, MazeLevel


@dataclass
class PathCheck:
    """Oracle paths as token sequences, and where (and among which legal moves) each move is predicted.

    tokens:    (B, T) the maze prefix followed by the oracle's moves.
    targets:   (B, T) the next move's action id at each move-predicting position, else -1.
    legal:     (B, T, 4) bool, the moves that do not run into a wall at that position.
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    legal: torch.Tensor


def teacher_forced_equals_rollout(level: MazeLevel) -> bool:
    """Whether :func:`exact_paths` measures exactly what a greedy rollout does on ``level``."""
    return level.generator in PERFECT_GENERATORS


def oracle_path_check(mazes: MazeBatch) -> PathCheck:
    """The teacher-forced check of ``mazes`` (one level): oracle paths, move targets and legal moves."""
    batch: SupervisedBatch = tok.supervised_batch(mazes, horizons=1)
    moves, _ = oracle_moves(mazes)
    n, steps = moves.shape
    step = torch.tensor([-mazes.width, 1, mazes.width, -1], device=moves.device)
    delta = torch.where(moves >= 0, step[moves.clamp(min=0)], 0)
    cells = mazes.start[:, None] + torch.cumsum(delta, dim=1) - delta  # the cell before each move
    here = mazes.passages.gather(1, cells.clamp(0, mazes.passages.shape[1] - 1))
    legal_moves = action_bits(here.reshape(-1))
    first = tok.prefix_length(MazeLevel("check", mazes.height, mazes.width)) - 1  # predicts the first move
    width = batch.tokens.shape[1]
    targets = torch.full((n, width), -1, dtype=torch.long, device=moves.device)
    legal = torch.ones(n, width, 4, dtype=torch.bool, device=moves.device)
    targets[:, first : first + steps] = moves
    legal[:, first : first + steps] = legal_moves.reshape(n, steps, 4)
    return PathCheck(batch.tokens, targets, legal)


def exact_paths(action_logits: torch.Tensor, check: PathCheck, mask_invalid: bool) -> torch.Tensor:
    """(B,) bool: the greedy walk would follow the oracle path exactly, given the model's logits over
    the four move tokens at every position ((B, T, 4), from one pass over ``check.tokens``)."""
    if mask_invalid:
        action_logits = action_logits.masked_fill(~check.legal, float("-inf"))
    wrong = (action_logits.argmax(-1) != check.targets) & (check.targets >= 0)
    return ~wrong.any(dim=1)
