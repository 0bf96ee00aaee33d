"""Every way a run ends writes its report: a wall-clock budget, Ctrl-C, and a loss that turns NaN."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from foundation.checkpoint import load_checkpoint
from runners import maze
from runners.app import execute
from runners.loop import NonFiniteMetricError
from tests.runners.helpers import compose_config


def run(run_dir, overrides: list[str]) -> dict:
    return execute(compose_config("maze", overrides), "maze", maze.build_experiment, run_dir=run_dir)


def test_max_minutes_stops_cleanly_with_checkpoint_report_and_plots(tmp_path):
    report = run(tmp_path, ["trainer.steps=50", "trainer.max_minutes=0.0001"])
    assert report["steps_done"] == 1 and "trainer.max_minutes" in report["stopped_early"]
    assert load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["step"] == 1
    assert json.loads((tmp_path / "report.json").read_text())["steps_done"] == 1
    assert (tmp_path / "plots" / "eval_history.png").is_file()


def test_ctrl_c_writes_the_report_before_it_exits(tmp_path, monkeypatch):
    train_step = maze.MazeExperiment.train_step

    def interrupted(self, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return train_step(self, step)

    monkeypatch.setattr(maze.MazeExperiment, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, ["trainer.steps=6"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stopped_early"] == "interrupted" and report["steps_done"] == 3


def test_a_nan_loss_stops_the_run_names_the_metric_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    train_step = maze.MazeExperiment.train_step

    def poisoned(self, step):
        out = train_step(self, step)
        if step == 2:  # the third step's loss is NaN
            out.metrics["loss"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(maze.MazeExperiment, "train_step", poisoned)
    with pytest.raises(NonFiniteMetricError, match=r"train/loss between steps 2 and 4"):
        run(tmp_path, ["trainer.steps=6"])
    assert load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["step"] == 2
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stopped_early"].startswith("non-finite train/loss") and report["steps_done"] == 4
