"""The closing line names the best score reached at each curriculum level, not just the last evaluation."""

from pathlib import Path

from runners.loop import run_summary


def test_summary_reports_best_score_per_level_by_name():
    report = {
        "steps": 1500,
        "best_checkpoints": {"0": 0.9375, "1": 0.078125},
        "curriculum": {"level_names": ["3x3", "4x4", "5x5"]},
    }
    line = run_summary(report, Path("outputs/run"))
    assert "1500 steps" in line and "3x3: 0.938" in line and "4x4: 0.078" in line and "outputs/run" in line


def test_summary_without_curriculum_names_or_scores():
    line = run_summary({"steps": 10, "best_checkpoints": {"2": 0.5}}, Path("r"))
    assert "level 2: 0.500" in line
    assert "none" in run_summary({"steps": 10}, Path("r"))
