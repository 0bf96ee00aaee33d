"""CUDA checks of the supervised data path: a prefetching sampler's steps between draws do not wait for
the GPU each step, a maze draw reads the host twice (the DFS's completion checks, read once at the end,
and the longest path), and the deferred checks give the same mazes and generator stream as reading
each at once."""

import pytest
import torch

from bench.harness import host_syncs
from curricula import CurriculumSampler, StagedSchedule
from envs.maze.generators import _dfs
from envs.maze.task import MazeTask

pytestmark = pytest.mark.gpu


def test_prefetching_sampler_hands_out_batches_without_waiting_for_the_gpu():
    task = MazeTask.from_spec(["8x8"], horizons=4)
    sampler = CurriculumSampler(task, StagedSchedule(1, [{"level": 0}]), seed=0, prefetch=4)
    generator = torch.Generator(device="cuda").manual_seed(0)
    sampler.sample_batch(16, "cuda", generator)  # the draw
    # One H200 (2026-12-03) counted 1 synchronising call over these three steps, not 0: its source is not
    # found yet, but a sync per step would count 3 and the old host-to-device copy of the levels did that.
    assert host_syncs(lambda: [sampler.sample_batch(16, "cuda", generator) for _ in range(3)]) <= 1
    assert sampler.last_levels.device.type == "cpu"


def test_a_maze_draw_on_cuda_reads_the_host_twice():
    task = MazeTask.from_spec(["12x12"], horizons=4)
    generator = torch.Generator(device="cuda").manual_seed(0)
    task.sample_batch(8, "cuda", generator)  # device constants and neighbour tables are made once
    assert host_syncs(lambda: task.sample_batch(256, "cuda", generator)) <= 2


@pytest.mark.parametrize("n", [1, 64])
def test_dfs_checks_read_at_the_end_equal_checks_read_at_once_on_cuda(n):
    at_once = torch.Generator(device="cuda").manual_seed(3)
    at_end = torch.Generator(device="cuda").manual_seed(3)
    eager = _dfs(n, 6, 5, at_once, read_now=True)
    deferred = _dfs(n, 6, 5, at_end, read_now=False)
    assert all(torch.equal(a, b) for a, b in zip(eager, deferred, strict=True))
    assert torch.equal(at_once.get_state(), at_end.get_state())
