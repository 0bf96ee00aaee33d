"""Exact-path accuracy from one forward pass: on perfect mazes it equals a greedy rollout.

A perfect maze (DFS, Prim, Wilson, recursive division: a spanning tree) has exactly one shortest path
between two cells, so a greedy walk is optimal if and only if, at every cell of that path, its arg-max
move is the path's next move. Before its first mistake the walk has seen exactly the oracle's moves, so
its logits there are those of the oracle path read in one teacher-forced pass (up to floating-point
ties). :func:`exact_paths` therefore scores a whole batch of fresh mazes with one forward pass instead
of one step per move (:func:`teacher_forced_exact` runs that pass); ``runners.maze`` uses it under
``task.eval_mode=teacher_forced`` and keeps the rollout (which also measures success and draws the walks)
as the ground truth. Open grids have ties between shortest paths and always go through the rollout.

Walks are scored three ways (:func:`path_rates`): ``success`` (reached the goal), ``exact_path`` (reached
it in exactly the shortest length) and ``near_optimal`` (reached it within 1.05x of the shortest length,
the PoH-HRM seed's "optimal", :func:`near_optimal`); the teacher-forced pass measures ``exact_path`` only.

A maze evaluation is compared along two axes, the generator and the size: :func:`level_table` writes
per-level results with both, and :func:`exact_path_by_size` regroups several runs' tables by them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from envs.common.task import SupervisedBatch
from envs.maze import tokens as tok
from envs.maze.grid import MazeBatch, action_bits, oracle_moves
from envs.maze.levels import PERFECT_GENERATORS, MazeLevel
from foundation import make_generator

if TYPE_CHECKING:
    from envs.maze.task import MazeTask

EVAL_MODES = ("rollout", "teacher_forced")
"""``task.eval_mode``: greedy walks in the vector env, or one forward pass over the oracle paths."""


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


@torch.no_grad()
def teacher_forced_exact(
    backbone: nn.Module, mazes: MazeBatch, mask_invalid: bool, bf16: bool = False
) -> torch.Tensor:
    """(n,) bool: ``backbone``'s greedy walk would follow each maze's oracle path exactly, from one
    forward pass over the oracle paths (equal to the walk on perfect mazes; see the module doc)."""
    check = oracle_path_check(mazes)
    with torch.autocast(check.tokens.device.type, torch.bfloat16, enabled=bf16):
        logits = backbone(check.tokens, return_state=False).logits
    return exact_paths(logits[..., tok.ACTION_TOKEN_IDS].float(), check, mask_invalid)


def teacher_forced_fresh(
    backbone: nn.Module, task: MazeTask, level: MazeLevel, n: int, seed: int, mask_invalid: bool, bf16: bool
) -> torch.Tensor:
    """(n,) bool :func:`teacher_forced_exact` on ``n`` fresh mazes of ``level`` drawn from ``seed`` on the
    backbone's device, the backbone in eval mode: ``task.eval_mode=teacher_forced`` on perfect mazes."""
    device = next(backbone.parameters()).device
    backbone.eval()
    mazes = task.generate(n, make_generator(seed, "eval/mazes", device), level=level)
    return teacher_forced_exact(backbone, mazes, mask_invalid, bf16)


NEAR_OPTIMAL_PERCENT = 105
"""``near_optimal``'s threshold: the PoH-HRM seed's "optimal", a solved walk whose path, counted in cells
(start included, so moves + 1), is at most 1.05x the shortest path's cells (its ``evaluate`` in
Eran-BA/PoT experiments/run_12x12_8m_benchmark.py: ``pred_len <= true_len * 1.05``, counted only for
solved mazes, divided by all test mazes)."""


def near_optimal(solved: torch.Tensor, steps: torch.Tensor, shortest: torch.Tensor) -> torch.Tensor:
    """(n,) bool: solved in ``steps`` moves with ``steps + 1 <= 1.05 (shortest + 1)`` cells (the seed's
    "optimal"; :data:`NEAR_OPTIMAL_PERCENT`). Integer arithmetic on the tensors' device: no float
    rounding at the threshold and no host sync. Every exact path is near-optimal; a wall bump counts as
    a move."""
    return solved & (100 * (steps.long() + 1) <= NEAR_OPTIMAL_PERCENT * (shortest.long() + 1))


def path_rates(optimal: torch.Tensor, solved: torch.Tensor, near: torch.Tensor) -> dict[str, torch.Tensor]:
    """A maze evaluation's three rates from per-maze bools: ``exact_path`` (solved by a shortest path),
    ``near_optimal`` (solved within 1.05x of it, the PoH-HRM seed's "optimal": :func:`near_optimal`) and
    ``success`` (reached the goal)."""
    return {
        "exact_path": optimal.float().mean(),
        "near_optimal": near.float().mean(),
        "success": solved.float().mean(),
    }


def rollout_rates(final: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """:func:`path_rates` of ``MazeVectorEnv`` episodes from a rollout's ``final`` info (each episode's
    ``solved_optimally``, ``success``, ``steps`` and ``optimal_length``)."""
    near = near_optimal(final["success"], final["steps"], final["optimal_length"])
    return path_rates(final["solved_optimally"], final["success"], near)


def level_table(scores: Iterable[tuple[MazeLevel, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``{result: {level name: value}}`` from each level's results (tensors as Python numbers), with the
    level's evaluation axes added as two more results: its ``generator`` and ``size`` ("rows x columns")."""
    table: dict[str, dict[str, Any]] = {}
    for level, results in scores:
        axes = {"generator": level.generator, "size": f"{level.height}x{level.width}"}
        for key, value in {**results, **axes}.items():
            table.setdefault(key, {})[level.name] = value.item() if isinstance(value, torch.Tensor) else value
    return table


def exact_path_by_size(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Several runs' :func:`level_table` exact-path rates as ``{generator: {run: {size: rate}}}``."""
    generators = sorted({g for table in runs.values() for g in table["generator"].values()})
    return {
        g: {
            run: {t["size"][k]: v for k, v in t["exact_path"].items() if t["generator"][k] == g}
            for run, t in runs.items()
        }
        for g in generators
    }
