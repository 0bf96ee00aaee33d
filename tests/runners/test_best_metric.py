"""The best checkpoint is ranked by the metric the config names (generation: validation bits per character,
lower better), and a NaN loss between log points never reaches a saved checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from foundation.checkpoint import load_checkpoint
from runners import generation, maze
from runners.app import execute
from runners.loop import NonFiniteMetricError
from tests.runners.helpers import compose_config

FIXED_LEVEL = ["curriculum=none", "trainer.steps=6"]  # one level, evaluated at steps 2, 4 and 6


def run_generation(tmp_path, monkeypatch, bits: list[float], overrides: list[str]) -> dict:
    """A tiny generation run whose evaluations report ``bits`` as bits per character, in order."""
    extras = generation.GenerationExperiment.eval_extras
    queue = list(bits)

    def scripted(self, step, logger):
        metrics = extras(self, step, logger)
        metrics["bits_per_char"] = queue.pop(0)
        return metrics

    monkeypatch.setattr(generation.GenerationExperiment, "eval_extras", scripted)
    cfg = compose_config("generation", [*FIXED_LEVEL, *overrides])
    return execute(cfg, "generation", generation.build_experiment, run_dir=tmp_path)


def test_generation_keeps_the_checkpoint_with_the_lowest_validation_bits_per_character(tmp_path, monkeypatch):
    cfg = compose_config("generation")
    assert cfg.trainer.best_metric == "bits_per_char" and cfg.trainer.best_mode == "min"
    report = run_generation(tmp_path, monkeypatch, [3.0, 2.0, 2.5], [])
    assert load_checkpoint(tmp_path / "checkpoints" / "best_level0.pt")["step"] == 4
    assert report["best_checkpoints"] == {"0": 2.0}
    assert report["best_metric"] == {"name": "bits_per_char", "mode": "min"}


def test_best_mode_max_keeps_the_highest(tmp_path, monkeypatch):
    report = run_generation(tmp_path, monkeypatch, [3.0, 2.0, 2.5], ["trainer.best_mode=max"])
    assert load_checkpoint(tmp_path / "checkpoints" / "best_level0.pt")["step"] == 2
    assert report["best_checkpoints"] == {"0": 3.0}


def test_an_unknown_best_metric_names_the_metrics_and_the_override(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"trainer.best_metric='nope'.*bits_per_char.*trainer.best_metric="):
        run_generation(tmp_path, monkeypatch, [3.0], ["trainer.best_metric=nope"])
    with pytest.raises(ValueError, match=r"trainer\.best_mode='lowest'"):
        run_generation(tmp_path, monkeypatch, [3.0], ["trainer.best_mode=lowest"])


def test_maze_keeps_ranking_by_its_own_score():
    assert compose_config("maze").trainer.best_metric is None


def test_a_nan_between_log_points_stops_before_the_next_checkpoint(tmp_path, monkeypatch):
    train_step = maze.MazeExperiment.train_step

    def poisoned(self, step):
        out = train_step(self, step)
        if step == 2:  # the third step's loss is NaN; the next log point would be step 4
            out.metrics["loss"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(maze.MazeExperiment, "train_step", poisoned)
    cfg = compose_config("maze", ["trainer.steps=6", "trainer.log_every=4", "trainer.checkpoint_every=1"])
    with pytest.raises(NonFiniteMetricError, match=r"train/loss by step 3"):
        execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path)
    assert load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["step"] == 2
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["stopped_early"].startswith("non-finite train/loss") and report["steps_done"] == 3
