"""bench.maze_throughput's fresh-maze row pays for at least one newly generated maze per reset, which is
what makes it comparable with Jumanji's autoreset."""

from __future__ import annotations

import torch

from bench.harness import Benchmark
from bench.maze_throughput import fresh_pool_plan, vector_steps_per_s
from envs.maze import MazeLevel
from envs.maze.vector import MazeVectorEnv


def test_fresh_mazes_generate_at_least_one_maze_per_reset() -> None:
    device = torch.device("cpu")
    bench = Benchmark("maze throughput test", device=device)
    level = MazeLevel("3x3", 3, 3)
    sps, per_reset = vector_steps_per_s(bench, 64, "walls", level, device, compile=False, fresh_factor=1.0)
    assert sps > 0
    assert per_reset >= 1.0


def test_pool_row_generates_no_mazes_while_timed() -> None:
    device = torch.device("cpu")
    bench = Benchmark("maze throughput test", device=device)
    _, per_reset = vector_steps_per_s(bench, 64, "walls", MazeLevel("3x3", 3, 3), device, compile=False)
    assert per_reset == 0.0


def test_fresh_pool_plan_spaces_refreshes_beyond_the_longest_episode() -> None:
    # a refresh restarts episodes still on the bank it overwrites: spaced beyond the step limit, none is
    actions = torch.randint(4, (8, 64), generator=torch.Generator().manual_seed(0))
    level = MazeLevel("3x3", 3, 3)
    pool, chunks = fresh_pool_plan(64, level, torch.device("cpu"), actions, factor=1.0)
    probe = MazeVectorEnv(64, obs_mode="walls", levels=[level], seed=1, pool_size=1024)
    assert chunks * 8 > int(probe.pool.limit.max())
    assert 1 <= pool <= 2 * chunks * 8 * 64
