"""bench.eval_throughput measures the maze runner's own greedy evaluation, and the rollout's completion
check every k steps changes nothing that evaluation reports."""

from __future__ import annotations

import argparse

import pytest
import torch

from agents.rollout import BackbonePolicy
from bench import eval_throughput as bench
from runners import maze
from runners.app import execute
from runners.ddp import DistInfo
from tests.runners.helpers import compose_config

CPU = torch.device("cpu")
SMALL = [
    "preset=maze_fast",  # the bench's preset, shrunk to a CPU-sized model and 5x5 mazes
    "backbone.d_model=32",
    "backbone.n_layers=1",
    "backbone.n_heads=2",
    "task.levels=[5x5]",
    "task.eval_mode=rollout",
    "task.eval_episodes=6",
    "trainer.max_minutes=null",
    "trainer.supervised.prefetch_batches=1",
]


def walked(out) -> dict[str, torch.Tensor]:
    """What an evaluation reads from a rollout: each sub-env's walk (its last observation) and outcome."""
    keys = ("steps", "success", "solved_optimally")
    return {"walk": out.final_obs["tokens"], **{k: out.final[k] for k in keys}}


def assert_same_walks(a, b) -> None:
    for key, value in walked(a).items():
        torch.testing.assert_close(value, walked(b)[key], msg=f"{key} differs")


def test_the_bench_walks_the_mazes_exactly_as_the_maze_runner_evaluates():
    cfg = compose_config("maze", SMALL)
    experiment = maze.build_experiment(cfg, DistInfo())
    runner_out = experiment.greedy_rollouts(experiment.make_vector_env(6, seed=3), 0, seed=11)

    model = bench.eval_model(cfg, "5x5", CPU, experiment.agent.backbone.state_dict())
    out = bench.greedy_rollout(bench.eval_env(model, 6, CPU, seed=3), bench.greedy_policy(model), seed=11)

    assert_same_walks(out, runner_out)
    assert bench.live_env_steps(out) == int(runner_out.final["steps"].sum())


def test_checking_completion_every_8_steps_gives_the_walks_of_checking_every_step():
    cfg = compose_config("maze", SMALL)
    model = bench.eval_model(cfg, "5x5", CPU)
    runs = {
        k: bench.greedy_rollout(bench.eval_env(model, 8, CPU), bench.greedy_policy(model), 5, k)
        for k in (1, 8)
    }

    assert_same_walks(runs[1], runs[8])
    assert bench.live_env_steps(runs[1]) == bench.live_env_steps(runs[8])
    loop_steps = {k: out.env_steps // 8 for k, out in runs.items()}
    assert loop_steps[1] <= loop_steps[8] < loop_steps[1] + 8  # at most k - 1 steps past the last finish
    assert int(runs[1].final["steps"].max()) == loop_steps[1]  # k=1 stops at the longest episode's end


def test_a_reserved_kv_cache_walks_as_the_concatenated_one():
    model = bench.eval_model(compose_config("maze", SMALL), "5x5", CPU)
    runs = [
        bench.greedy_rollout(bench.eval_env(model, 8, CPU), bench.greedy_policy(model, reserve_kv=r), seed=4)
        for r in (True, False)
    ]
    assert_same_walks(*runs)


def test_streaming_only_the_unfinished_mazes_walks_as_rereading_every_maze_each_step():
    model = bench.eval_model(compose_config("maze", SMALL), "5x5", CPU)
    focused = bench.greedy_policy(model)
    streamed = bench.greedy_rollout(bench.eval_env(model, 8, CPU), focused, seed=6)
    reread = BackbonePolicy(
        model.backbone, action_token_ids=model.task.action_token_ids, greedy=True, mask_invalid=True
    )  # no streaming: the whole observation each step, every maze until the last one finishes
    assert focused._rows is not None and len(focused._rows) < 8  # the stream did drop finished mazes
    assert_same_walks(streamed, bench.greedy_rollout(bench.eval_env(model, 8, CPU), reread, seed=6))


def test_a_row_counts_only_live_episode_steps():
    cfg = compose_config("maze", SMALL)
    model = bench.eval_model(cfg, "5x5", CPU)
    args = argparse.Namespace(bf16=False, seed=2, repeats=1)
    row = bench.measure(model, 4, "eager", 8, args)

    assert 0 < row["live_env_steps"] <= row["loop_steps"] * 4
    assert row["env_steps_per_s"] == pytest.approx(row["live_env_steps"] / row["rollout_s"])
    assert row["host_syncs"] == "n/a (cpu)"


def test_a_checkpoint_brings_its_runs_config_and_trained_weights(tmp_path):
    cfg = compose_config("maze", [*SMALL, "trainer.steps=2", "trainer.eval_every=2"])
    execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path)

    loaded, weights = bench.eval_config(str(tmp_path), [])
    model = bench.eval_model(loaded, "5x5", CPU, weights)

    assert model.trained and model.backbone.cfg.d_model == 32 and model.task.horizons == cfg.task.horizons
    saved = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    torch.testing.assert_close(
        model.backbone.embed.weight, saved["experiment"]["agent"]["backbone"]["embed.weight"]
    )


def test_a_folder_without_a_checkpoint_is_refused_naming_the_flag(tmp_path):
    with pytest.raises(SystemExit, match="--checkpoint"):
        bench.eval_config(str(tmp_path), [])
