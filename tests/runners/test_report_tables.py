"""Console tables: the end-of-run table and runners.evaluate's print the headline metric under its own name,
final beside best for every level, with the numbers report.json holds."""

from __future__ import annotations

import json
from pathlib import Path

from runners import recall
from runners.app import execute
from runners.evaluate import evaluation_tables
from runners.loop import run_summary
from runners.report import format_table, level_results, markdown_table, run_table
from tests.runners.helpers import compose_config, maze_history


def _maze_history():
    """3x3 peaks at 0.844 and falls to 0.375 after the curriculum moves to 4x4 (the quick start's story)."""
    return maze_history(
        [(150, 0, 0.14, 0.0), (1050, 0, 0.844, 0.02), (1200, 1, 0.5, 0.05), (1500, 1, 0.375, 0.078)]
    )


def _report(history, **extra):
    return {
        "runner": "maze",
        "steps": 1500,
        "steps_done": 1500,
        "history": history,
        "best_checkpoints": {"0": 0.844, "1": 0.078},
        "exact_path_by_level": {},
        "curriculum": {"level": 1, "level_names": ["3x3", "4x4", "5x5"]},
        **extra,
    }


def _row(text: str, first: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.split()[:1] == [first])


def test_end_of_run_table_shows_final_beside_best_under_the_metric_name():
    text = run_summary(_report(_maze_history()), Path("outputs/run"))
    assert "exact_path final" in text and "exact_path best" in text and "score" not in text.split("\n")[1]
    assert _row(text, "3x3")[:5] == ["3x3", "0.375", "0.844", "1050", "44%"]
    assert _row(text, "4x4")[:5] == ["4x4", "0.078", "0.078", "1500", "100%"]
    assert "curriculum at level 1 (4x4)" in text and "Finished 1500 of 1500 steps" in text
    assert "outputs/run" in text


def test_levels_are_in_ladder_order_and_a_level_not_evaluated_last_names_its_step():
    history = _maze_history()
    del history[-1]["exact_path/4x4"]
    levels = level_results(history, "exact_path", ["4x4", "3x3"])
    assert list(levels) == ["4x4", "3x3"]
    assert levels["4x4"] == {
        "final": 0.05,
        "final_step": 1200,
        "best": 0.05,
        "best_step": 1200,
        "evaluations": 3,
    }
    assert "0.050 (step 1200)" in run_table(_report(history))


def test_level_independent_metrics_take_the_lowest_as_best_where_lower_is_better():
    history = [
        {"step": 100, "level": 0, "reward/p16": 0.2, "reward": 0.2, "bits_per_char": 3.0, "score": 0.2},
        {"step": 200, "level": 0, "reward/p16": 0.4, "reward": 0.4, "bits_per_char": 2.0, "score": 0.4},
        {"step": 300, "level": 0, "reward/p16": 0.3, "reward": 0.3, "bits_per_char": 2.5, "score": 0.3},
    ]
    text = run_table({"runner": "generation", "history": history, "reward_by_level": {}})
    assert _row(text, "p16")[:4] == ["p16", "0.300", "0.400", "200"]
    assert _row(text, "bits_per_char") == ["bits_per_char", "2.500", "2.000", "200"]
    assert "reward final" in text and "(no evaluation" not in text
    assert "no evaluation" in run_table({"runner": "maze", "history": []})


def test_tables_align_columns_and_markdown_has_a_header_rule():
    text = format_table(["name", "value"], [["a", 0.5], ["long name", None]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # every line as wide as the widest
    assert lines[2].endswith("0.500") and lines[3].endswith("-")
    md = markdown_table(["name", "value"], [["a", 0.5]])
    assert md.splitlines() == ["| name | value |", "|---|---|", "| a | 0.500 |"]


def test_evaluate_table_names_the_headline_and_compares_runs():
    run = {
        "exact_match": {"len1": 1.0, "len2": 0.5},
        "accuracy": {"len1": 1.0, "len2": 0.75},
        "grid": {"family": "copy"},
        "step": 40,
        "checkpoint": "a/latest.pt",
        "training": {"len1": {"final": 0.9, "best": 1.0}},
    }
    other = {**run, "exact_match": {"len1": 0.25, "len2": 0.0}, "training": {}}
    text = evaluation_tables({"A": run, "B": other}, {"A": "recall", "B": "recall"})
    assert "train exact_match final" in text and "A (recall, step 40, a/latest.pt):" in text
    assert _row(text, "len1")[:5] == ["len1", "1.000", "1.000", "0.900", "1.000"]
    assert "recall: exact_match by level, run by run:" in text
    assert text.splitlines()[-1].split() == ["len2", "0.500", "0.000"]


def test_a_real_run_prints_the_numbers_report_json_holds(tmp_path, capsys):
    cfg = compose_config("recall", ["trainer.steps=4"])
    execute(cfg, "recall", recall.build_experiment, run_dir=tmp_path)
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    last = report["history"][-1]
    for level in ("len1-v2", "len2-v4"):
        row = _row(printed, level)
        values = [r[f"exact_match/{level}"] for r in report["history"]]
        assert row[1] == f"{last[f'exact_match/{level}']:.3f}" and row[2] == f"{max(values):.3f}"
