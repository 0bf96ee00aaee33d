"""Each runner's default config, shortened, trains end to end on the CPU and leaves a complete record."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from foundation.checkpoint import load_checkpoint
from runners import generation, maze, recall
from runners.app import execute
from tests.runners.helpers import compose_config, event_tags

MODULES = {"maze": maze, "recall": recall, "generation": generation}
TRAIN_TAGS = {"train/loss", "train/ce", "train/accuracy", "train/lr", "train/grad_norm", "train/tokens_per_s"}
EVAL_TAGS = {
    "maze": {
        "eval/exact_path",
        "eval/exact_path/3x3",
        "eval/near_optimal/3x3",
        "eval/success/3x3",
        "eval/env_steps_per_s",
    },
    "recall": {"eval/exact_match", "eval/accuracy", "eval/exact_match/len1-v2"},
    "generation": {"eval/bits_per_char", "eval/reward", "eval/reward_fluency", "eval/reward_repetition"},
}
IMAGES = {
    "maze": {"rollouts/0", "inspect/attention/block0"},
    "recall": {"eval/heatmap", "inspect/attention/block0"},
    "generation": {"inspect/attention/block0"},
}


def run(runner: str, run_dir, overrides: list[str] | None = None) -> dict:
    cfg = compose_config(runner, overrides)
    return execute(cfg, runner, MODULES[runner].build_experiment, run_dir=run_dir)


@pytest.mark.parametrize("runner", ["maze", "recall", "generation"])
def test_default_config_runs_end_to_end(runner, tmp_path):
    report = run(runner, tmp_path)

    tags = event_tags(tmp_path / "tb")
    scalars = set(tags["scalars"])
    assert scalars >= TRAIN_TAGS, TRAIN_TAGS - scalars
    assert EVAL_TAGS[runner] <= scalars, EVAL_TAGS[runner] - scalars
    assert {"curriculum/level", "curriculum/success_level0"} <= scalars
    assert any(tag.startswith("train/engine/temperature") for tag in scalars)
    assert IMAGES[runner] <= set(tags["images"]), set(tags["images"])
    losses = [event.value for event in tags["accumulator"].Scalars("train/loss")]
    assert len(losses) == 2 and all(v > 0 for v in losses)

    latest = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    assert latest["runner"] == runner and latest["step"] == 4
    assert (tmp_path / "checkpoints" / "best_level0.pt").is_file()

    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["runner"] == runner and [h["step"] for h in on_disk["history"]] == [2, 4]
    assert on_disk["final"]["score"] == report["final"]["score"]
    assert all((tmp_path / plot).is_file() for plot in on_disk["plots"])


def test_generation_logs_text_samples_and_rl_metrics(tmp_path):
    run("generation", tmp_path)
    tags = event_tags(tmp_path / "tb")
    assert "samples/text_summary" in tags["tensors"]
    assert {"train/rl/loss", "train/rl/reward_per_step", "train/env_steps_per_s"} <= set(tags["scalars"])


@pytest.mark.parametrize("prefetch", [1, 3])  # 3: the stop at step 4 falls inside a prefetched draw
def test_ctrl_c_stops_at_a_step_boundary_and_resume_matches_an_uninterrupted_run(
    tmp_path, monkeypatch, prefetch
):
    overrides = ["trainer.steps=6", f"trainer.supervised.prefetch_batches={prefetch}"]
    run("maze", tmp_path / "whole", overrides)
    train_step = maze.MazeExperiment.train_step

    def interrupted(self, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
        return train_step(self, step)

    monkeypatch.setattr(maze.MazeExperiment, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run("maze", tmp_path / "split", overrides)
    saved = load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt")
    assert saved["step"] == 4
    monkeypatch.undo()

    report = run("maze", tmp_path / "split", [*overrides, "resume=true"])
    assert [h["step"] for h in report["history"]] == [2, 4, 6]
    whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")
    split = load_checkpoint(tmp_path / "split" / "checkpoints" / "latest.pt")
    assert split["step"] == 6
    for name, tensor in whole["experiment"]["agent"]["backbone"].items():
        torch.testing.assert_close(split["experiment"]["agent"]["backbone"][name], tensor, msg=name)
    assert _without_timings(whole["history"]) == _without_timings(split["history"])
    minutes = [h["minutes"] for h in report["history"]]  # the time axis counts on from the saved clock
    assert minutes == sorted(minutes) and minutes[0] > 0 and minutes[-1] > saved["minutes"]


def _without_timings(history: list[dict]) -> list[dict]:
    timings = ("per_s", "seconds", "minutes")
    return [{k: v for k, v in record.items() if not k.endswith(timings)} for record in history]


def test_resume_from_another_runners_checkpoint_names_the_right_command(tmp_path):
    run("recall", tmp_path / "recall", ["trainer.steps=2"])
    with pytest.raises(ValueError, match=r"python -m runners\.recall"):
        run("maze", tmp_path / "maze", [f"resume={tmp_path / 'recall'}"])


def test_resume_true_without_a_checkpoint_explains_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"hydra\.run\.dir"):
        run("maze", tmp_path, ["resume=true"])
