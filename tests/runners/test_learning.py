"""Slow learning checks (``pytest -m slow``): the default runs show what the docs promise."""

from __future__ import annotations

import pytest

from runners import maze, recall
from runners.app import execute
from tests.runners.helpers import compose_config, event_tags


@pytest.mark.slow
def test_maze_default_learns_small_mazes(tmp_path):
    cfg = compose_config("maze", ["trainer.progress_bar=false"], tiny=False)
    report = execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path)
    exact = [h["exact_path/3x3"] for h in report["history"]]
    assert max(exact) >= exact[0] + 0.3, exact
    losses = [e.value for e in event_tags(tmp_path / "tb")["accumulator"].Scalars("train/loss")]
    assert min(losses[-10:]) < 0.6 * losses[0], (losses[0], losses[-10:])


@pytest.mark.slow
def test_recall_default_learns_copy_length_by_length(tmp_path):
    cfg = compose_config("recall", ["trainer.progress_bar=false"], tiny=False)
    report = execute(cfg, "recall", recall.build_experiment, run_dir=tmp_path)
    assert max(h["level"] for h in report["history"]) >= 2
    assert report["history"][-1]["exact_match/len2-v4"] >= 0.5
