"""A maze evaluation's axes: levels from other generators, per-level tables, runs regrouped by generator."""

from __future__ import annotations

import torch

from envs.maze import MazeLevel, MazeTask, layout_level
from envs.maze.evaluate import exact_path_by_size, level_table, path_rates, rollout_rates
from envs.maze.levels import generator_variants
from envs.maze.walk import walk_options

LADDER = [MazeLevel("3x3", 3, 3), MazeLevel("4x4", 4, 4, generator="prim", min_path=3)]


def test_variants_redraw_each_level_with_every_other_generator_but_not_layouts():
    ladder = [*LADDER, layout_level("#####\n#S G#\n#####", "room")]
    variants = generator_variants(ladder, ["prim", "wilson"])
    assert [v.name for v in variants] == ["3x3-prim", "3x3-wilson", "4x4-wilson"]
    assert variants[0] == MazeLevel("3x3-prim", 3, 3, generator="prim")
    assert variants[2].min_path == 3  # the hard filter travels with the size


def test_a_full_evaluation_task_walks_the_ladder_then_its_variants_at_the_same_horizons():
    task = MazeTask(LADDER, level=1, horizons=2).with_variants(["prim"])
    assert task.ladder.names == ["3x3", "4x4", "3x3-prim"]
    assert task.horizons == 2 and task.level_index == 0


def test_level_table_adds_generator_and_size_and_regroups_runs_by_them():
    optimal = torch.tensor([True, False, True, True])
    solved = torch.tensor([True, True, True, True])
    table = level_table([(LADDER[0], path_rates(optimal, solved, optimal)), (LADDER[1], {"exact_path": 0.5})])
    assert table["exact_path"] == {"3x3": 0.75, "4x4": 0.5} and table["success"] == {"3x3": 1.0}
    assert isinstance(table["exact_path"]["3x3"], float)  # JSON-ready, not a tensor
    assert table["generator"] == {"3x3": "dfs", "4x4": "prim"} and table["size"]["4x4"] == "4x4"
    other = {**table, "exact_path": {"3x3": 0.25, "4x4": 1.0}}
    assert exact_path_by_size({"a": table, "b": other}) == {
        "dfs": {"a": {"3x3": 0.75}, "b": {"3x3": 0.25}},
        "prim": {"a": {"4x4": 0.5}, "b": {"4x4": 1.0}},
    }


def test_rollout_rates_read_an_env_rollouts_final_info():
    optimal, solved = torch.tensor([True, False, False, True]), torch.tensor([True] * 4)
    steps, shortest = torch.tensor([39, 41, 60, 39]), torch.tensor([39] * 4)  # 41 moves: within 1.05x
    final = {"solved_optimally": optimal, "success": solved, "steps": steps, "optimal_length": shortest}
    rates = rollout_rates(final)
    assert float(rates["exact_path"]) == 0.5 and float(rates["success"]) == 1.0
    assert float(rates["near_optimal"]) == 0.75


def test_walk_options_follow_the_task_config():
    task_cfg = {"mask_invalid": 0, "step_limit_factor": 2, "avoid_revisits": 1, "eval_mode": "rollout"}
    options = walk_options(task_cfg, bf16=True)
    assert options == {"mask_invalid": False, "step_limit_factor": 2.0, "bf16": True, "avoid_revisits": True}
    assert isinstance(options["step_limit_factor"], float)
