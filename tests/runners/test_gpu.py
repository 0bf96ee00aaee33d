"""The gpu profile on a real GPU (skipped without CUDA): the maze runner trains with bf16 on cuda."""

from __future__ import annotations

import pytest

from runners import generation, maze
from runners.app import execute
from tests.runners.helpers import compose_config, event_tags


@pytest.mark.gpu
def test_maze_runner_trains_on_the_gpu_profile(tmp_path):
    cfg = compose_config("maze", ["hardware=gpu", "trainer.supervised.batch_size=64"])
    report = execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path)
    assert report["final"]["step"] == 4
    scalars = set(event_tags(tmp_path / "tb")["scalars"])
    assert {"train/gpu_memory_gb", "train/loss", "eval/exact_path"} <= scalars


@pytest.mark.gpu
def test_generation_runner_runs_rl_on_the_gpu(tmp_path):
    cfg = compose_config("generation", ["hardware=gpu", "engine.rl_envs=64"])
    execute(cfg, "generation", generation.build_experiment, run_dir=tmp_path)
    assert {"train/rl/loss", "eval/reward"} <= set(event_tags(tmp_path / "tb")["scalars"])
