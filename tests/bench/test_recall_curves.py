"""bench.recall_curves: one run per (task, backbone) on a fixed level, curves on the run's wall clock."""

from __future__ import annotations

import json

from bench.recall_curves import summary


def test_minutes_to_is_the_first_evaluation_at_the_threshold():
    report = {
        "steps_done": 30,
        "history": [
            {"step": 10, "minutes": 0.5, "exact_match/len8-v8": 0.4},
            {"step": 20, "minutes": 1.0, "exact_match/len8-v8": 0.95},
            {"step": 30, "minutes": 1.5, "exact_match/len8-v8": 0.85},
        ],
    }
    row = summary("copy", "hebbian", "len8-v8", report)
    assert row["minutes_to_0.9"] == 1.0 and row["best"] == 0.95 and row["final"] == 0.85
    assert summary("copy", "hebbian", "len16-v16", report)["evaluations"] == 0  # another level: no points


def test_trains_each_backbone_and_writes_the_table_and_figure(tmp_path):
    from bench.recall_curves import main

    rows = main([
        "--device", "cpu", "--minutes", "5", "--tasks", "copy", "--backbones", "transformer", "hebbian",
        "--level", "copy=len2-v4", "--eval-every", "4", "--steps", "8", "--out", str(tmp_path),
        "--overrides", "backbone.d_model=16", "backbone.n_layers=1", "hardware.num_threads=1",
    ])
    assert [row["backbone"] for row in rows] == ["transformer", "hebbian"]
    for row in rows:
        minutes = [m for m, _ in row["curve"]]
        assert row["steps"] == 8 and len(minutes) == 2 and minutes == sorted(minutes)
    saved = json.loads((tmp_path / "recall_curves.json").read_text())
    assert saved["rows"][1]["curve"] == [list(point) for point in rows[1]["curve"]]
    assert (tmp_path / "recall_curves.png").stat().st_size > 0
    assert "| copy | len2-v4 | hebbian | 8 |" in (tmp_path / "recall_curves.md").read_text()
