"""Greedy walks of a backbone through given mazes: solved and optimal (exact-path) rates on a fixed set.

The env's rollout draws its mazes from a pool; a fixed test set needs these mazes and no others. Each step
the backbone reads the whole token sequence (maze prefix, then the moves so far, as ``envs.maze.tokens``
writes it), the arg-max over the four move tokens is taken (moves into walls excluded with
``mask_invalid``, as the env's action mask does), and a move into a wall leaves the agent in place. With
``avoid_revisits`` (the maze seed's decoding) a move onto a cell the walk already visited is taken only
when every open move leads to one. A walk ends at the goal (solved) or after ceil(step_limit_factor *
shortest length) steps, as in ``MazeVectorEnv``; it is optimal when it solved the maze in exactly the
shortest length (in a perfect maze that is the oracle's path), and near-optimal when it solved it in at most
1.05x the shortest path's cells (``envs.maze.evaluate.near_optimal``: the PoH-HRM seed's "optimal").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from envs.maze import tokens as tok
from envs.maze.evaluate import near_optimal
from envs.maze.grid import COL_STEP, ROW_STEP, MazeBatch


class WalkResult(NamedTuple):
    """Per maze: reached the goal, reached it by a shortest path, the steps taken, and reached it within
    1.05x of the shortest length (``envs.maze.evaluate.near_optimal``, the PoH-HRM seed's "optimal"), all
    (n,)."""

    solved: torch.Tensor
    optimal: torch.Tensor
    steps: torch.Tensor
    near_optimal: torch.Tensor


def walk_options(task_cfg: Mapping[str, Any], bf16: bool = False) -> dict[str, Any]:
    """:func:`greedy_walk`'s options as a runner's ``task`` config sets them (``mask_invalid``,
    ``step_limit_factor``, ``avoid_revisits``), with the backbone's ``bf16``."""
    return {
        "mask_invalid": bool(task_cfg["mask_invalid"]),
        "step_limit_factor": float(task_cfg["step_limit_factor"]),
        "bf16": bool(bf16),
        "avoid_revisits": bool(task_cfg["avoid_revisits"]),
    }


@torch.no_grad()
def greedy_walk(
    backbone: nn.Module,
    mazes: MazeBatch,
    mask_invalid: bool = True,
    step_limit_factor: float = 3.0,
    bf16: bool = False,
    batch_size: int = 256,
    avoid_revisits: bool = False,
) -> WalkResult:
    """Walk every maze of ``mazes`` greedily with ``backbone`` (in eval mode; restored afterwards)."""
    if step_limit_factor <= 0:
        raise ValueError(f"step_limit_factor must be > 0, got {step_limit_factor}.")
    chunks = [torch.arange(i, min(i + batch_size, len(mazes))) for i in range(0, len(mazes), batch_size)]
    parts = [
        _walk(backbone, mazes.select(rows), mask_invalid, step_limit_factor, bf16, avoid_revisits)
        for rows in chunks
    ]
    return WalkResult(*(torch.cat(values) for values in zip(*parts, strict=True)))


def _walk(
    backbone: nn.Module, mazes: MazeBatch, mask_invalid: bool, factor: float, bf16: bool, avoid: bool
) -> WalkResult:
    device = next(backbone.parameters()).device
    mazes = mazes.to(device)
    was_training = backbone.training
    backbone.eval()
    width = mazes.width
    shortest = mazes.optimal_length
    limit = torch.ceil(factor * shortest.float()).long().clamp_min(1)
    tokens = tok.encode_prefix(mazes)
    cell = mazes.start.clone()
    passages = mazes.passages.long()
    bits = torch.arange(4, device=device)
    row_step = torch.tensor(ROW_STEP, device=device)
    col_step = torch.tensor(COL_STEP, device=device)
    steps = torch.zeros_like(cell)
    solved = torch.zeros_like(cell, dtype=torch.bool)
    running = cell != mazes.goal
    solved |= ~running
    action_ids = torch.arange(tok.MOVE0, tok.MOVE0 + 4, device=device)
    visited = torch.zeros_like(passages, dtype=torch.bool)
    visited.scatter_(1, cell[:, None], True)
    rows = torch.arange(len(cell), device=device)
    for _ in range(int(limit.max())):
        if not bool(running.any()):
            break
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            logits = backbone(tokens, return_state=False).logits[:, -1]
        scores = logits[:, action_ids].float()
        opened = ((passages.gather(1, cell[:, None]) >> bits) & 1).bool()  # (n, 4)
        if mask_invalid:
            scores = scores.masked_fill(~opened, float("-inf"))
        if avoid:  # prefer open moves onto unvisited cells, when there are any
            ahead = ((cell // width)[:, None] + row_step) * width + (cell % width)[:, None] + col_step
            fresh = opened & ~visited.gather(1, ahead.clamp(0, passages.shape[1] - 1))
            scores = torch.where(fresh.any(-1, keepdim=True) & ~fresh, float("-inf"), scores)
        action = scores.argmax(dim=-1)
        legal = opened.gather(1, action[:, None]).squeeze(1) & running
        target = (cell // width + row_step[action]) * width + cell % width + col_step[action]
        cell = torch.where(legal, target, cell)
        visited[rows, cell] = True
        steps = steps + running.long()
        arrived = running & (cell == mazes.goal)
        solved |= arrived
        running = running & ~arrived & (steps < limit)
        tokens = torch.cat([tokens, (tok.MOVE0 + action)[:, None]], dim=1)
    backbone.train(was_training)
    optimal = solved & (steps == shortest)
    near = near_optimal(solved, steps, shortest)
    return WalkResult(solved.cpu(), optimal.cpu(), steps.cpu(), near.cpu())
