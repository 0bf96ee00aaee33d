"""The maze runner's two evaluation modes: greedy walks, and the one-pass teacher-forced check."""

from __future__ import annotations

import pytest

from runners import maze
from runners.app import execute
from runners.ddp import DistInfo
from tests.runners.helpers import compose_config


def test_teacher_forced_evaluation_reports_exact_path_per_level_and_moves_the_curriculum(tmp_path):
    cfg = compose_config("maze", ["task.eval_mode=teacher_forced"])
    report = execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path)
    final = report["final"]
    assert {"exact_path", "exact_path/3x3", "exact_path/4x4", "exact_path_mean"} <= set(final)
    assert "success/3x3" not in final  # the one-pass check measures exact paths only
    assert sum(report["curriculum"]["episodes"]) == 2 * 2 * 8  # two evaluations x two levels x 8 mazes


def test_an_unknown_eval_mode_names_the_choices():
    with pytest.raises(ValueError, match=r"task.eval_mode='fast' is unknown.*teacher_forced"):
        maze.build_experiment(compose_config("maze", ["task.eval_mode=fast"]), DistInfo())
