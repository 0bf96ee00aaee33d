"""Plots as a researcher draws them: per-level lines with level-change markers, best beside final, every
axis labelled with units, and heatmap titles that name what the grid holds fixed."""

from __future__ import annotations

import itertools

import pytest

from envs.recall.evaluate import GridReport, ladder_grid
from envs.recall.render import grid_context, heatmap_figure
from envs.recall.task import RecallTask
from runners import report
from tests.runners.helpers import maze_history


@pytest.fixture
def figures(monkeypatch):
    """Keep the figures the plot functions would save, to look inside them."""
    kept = []
    monkeypatch.setattr(report, "_save", lambda figure, path: kept.append(figure) or path)
    return kept


def _history():
    return maze_history([(50, 0, 0.2, 0.0), (100, 0, 0.85, 0.05), (150, 1, 0.6, 0.1), (200, 1, 0.4, 0.3)])


def _axes(figure):
    return [ax for ax in figure.axes if ax.has_data()]


def test_history_marks_a_move_after_the_last_evaluation_from_the_final_level(figures):
    # The run ended at level 2 after its last evaluation (still at level 1): no record shows that move.
    report.plot_eval_history(_history(), "h.png", "maze: evaluation", "exact_path", ["3x3", "4x4", "5x5"], 2)
    (figure,) = figures
    exact = _axes(figure)[0]
    figure.canvas.draw()
    (top,) = exact.child_axes
    assert [(t.get_position()[0], t.get_text()) for t in top.get_xticklabels()] == [
        (100, "→ 4x4"),
        (200, "→ 5x5"),
    ]
    assert report.level_changes(_history(), final_level=1) == [(100, 1)]  # no move: nothing added


def test_history_draws_one_line_per_level_and_marks_the_level_change(figures):
    report.plot_eval_history(_history(), "h.png", "maze: evaluation", "exact_path", ["3x3", "4x4", "5x5"])
    (figure,) = figures
    axes = _axes(figure)
    assert [ax.get_title() for ax in axes] == ["exact_path per level", "success per level"]
    exact = axes[0]
    lines = {line.get_label(): line for line in exact.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"3x3", "4x4"}
    assert list(lines["3x3"].get_ydata()) == [0.2, 0.85, 0.6, 0.4]
    markers = [line for line in exact.get_lines() if line.get_linestyle() == ":"]
    assert [line.get_xdata()[0] for line in markers] == [100]  # the evaluation after which 3x3 -> 4x4
    figure.canvas.draw()
    (top,) = exact.child_axes  # the move is named on a tick axis above the panel, over no data point
    assert [(t.get_position()[0], t.get_text()) for t in top.get_xticklabels()] == [(100, "→ 4x4")]
    assert not exact.texts
    (legend,) = figure.legends  # one legend for every per-level panel, beside them
    assert legend.get_title().get_text() == "level"
    assert [t.get_text() for t in legend.get_texts()] == ["3x3", "4x4"]
    for ax in axes:
        assert ax.get_xlabel() == "training step (optimiser steps)"
        assert "fraction" in ax.get_ylabel()


def test_a_single_level_history_still_names_its_level(figures):
    history = [{"step": s, "level": 0, "exact_match/len1-v2": v} for s, v in [(10, 0.2), (20, 0.6)]]
    report.plot_eval_history(history, "h.png", "recall: evaluation", "exact_match", ["len1-v2", "len2-v4"])
    (legend,) = figures[0].legends
    assert [t.get_text() for t in legend.get_texts()] == ["len1-v2"]
    assert not _axes(figures[0])[0].child_axes  # no level change, no marker axis


def test_level_independent_metrics_get_their_own_panel_with_units_and_reference(figures):
    history = [
        {"step": 10, "level": 0, "reward/a": 0.1, "bits_per_char": 4.0, "reference_bits_per_char": 1.7},
        {"step": 20, "level": 0, "reward/a": 0.2, "bits_per_char": 3.0, "reference_bits_per_char": 1.7},
    ]
    report.plot_eval_history(history, "h.png", "generation", "reward", ["a"])
    axes = _axes(figures[0])
    assert [ax.get_title() for ax in axes] == ["reward per level", "bits_per_char"]
    assert axes[1].get_ylabel() == "bits per character (lower is better)"
    labels = [line.get_label() for line in axes[1].get_lines()]
    assert labels == ["bits_per_char", "reference_bits_per_char"]


def test_level_bars_show_best_beside_final(figures):
    report.plot_level_bars(_history(), "exact_path", "b.png", "maze: exact_path per level", ["3x3", "4x4"])
    (ax,) = _axes(figures[0])
    best, final = ax.containers[0], ax.containers[1]
    assert [b.get_height() for b in best] == [0.85, 0.3]
    assert [b.get_height() for b in final] == [0.4, 0.3]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["best", "final"]
    assert ax.get_xlabel() == "level" and ax.get_ylabel() == "exact-path rate (fraction of mazes)"
    assert "step 200" in ax.get_title()


def _task(family, levels):
    return RecallTask.from_spec(family, levels, level=0)


def test_associative_grid_names_the_vocabulary_it_evaluates_and_outlines_trained_levels():
    task = _task("associative", ["kv1-v4-q1-t4", "kv2-v8-q2-t8", "kv8-v64-q8-t64"])
    grid = ladder_grid(task)
    context = grid_context(task, grid)
    assert context["fixed"] == "vocab 64 (the ladder trains at vocab 4 to 64), queries = pairs"
    trained = {
        (grid.row_values[r], grid.col_values[c])
        for r, row in enumerate(context["trained"])
        for c, on in enumerate(row)
        if on
    }
    assert trained == {(8, 64)}  # kv1-v4 and kv2-v8 are not in a vocab-64 grid
    cells = [[0.0] * len(grid.col_values) for _ in grid.row_values]
    result = GridReport(
        "associative", grid.row_name, grid.row_values, grid.col_name, grid.col_values, cells, cells, 16
    )
    figure = heatmap_figure(result, context)
    ax, colour_bar = figure.axes
    assert "vocab 64" in ax.get_title() and "16 sequences" in ax.get_title()
    assert ax.get_xlabel() == "sequence length (tokens)" and ax.get_ylabel() == "key-value pairs"
    assert colour_bar.get_ylabel() == "exact-match rate\n(fraction of sequences)"
    assert len(ax.patches) == 1  # one outlined cell
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["a level the run trains on"]


def _flat_scores(grid, value):
    """The same score in every cell of ``grid`` (8 sequences a cell)."""
    cells = [[value] * len(grid.col_values) for _ in grid.row_values]
    axes = (grid.row_name, grid.row_values, grid.col_name, grid.col_values)
    return GridReport(grid.family, *axes, cells, cells, 8)


def _extents(figure):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    return renderer


@pytest.mark.parametrize("levels", [["len1-v2", "len2-v4"], ["len1-v2", "len2-v4", "len4-v8", "len8-v8"]])
def test_heatmap_legend_sits_below_the_x_axis_label_and_outlines_stay_apart(levels):
    task = _task("copy", levels)
    grid = ladder_grid(task)
    figure = heatmap_figure(_flat_scores(grid, 0.5), grid_context(task, grid))
    renderer = _extents(figure)
    ax = figure.axes[0]
    label = ax.xaxis.label.get_window_extent(renderer)
    (legend,) = figure.legends
    assert legend.get_window_extent(renderer).y1 <= label.y0  # wholly below the label: no overlap
    assert legend.get_window_extent(renderer).y0 >= 0  # and inside the figure
    assert ax.title.get_window_extent(renderer).y1 <= figure.bbox.y1
    outlines = [patch.get_bbox() for patch in ax.patches]
    assert len(outlines) == len(levels)
    assert all(box.width < 1 and box.height < 1 for box in outlines)  # inset: neighbours do not merge


def test_needle_grid_trains_every_depth_of_its_contexts_and_says_so_once():
    task = _task("needle", ["ctx64", "ctx128"])
    grid = ladder_grid(task)
    context = grid_context(task, grid)
    assert context["random"] == ["depth"]
    trained_columns = {grid.col_values[c] for row in context["trained"] for c, on in enumerate(row) if on}
    assert trained_columns == {64, 128} and all(all(row) for row in context["trained"])
    figure = heatmap_figure(_flat_scores(grid, 0.0), context)
    ax = figure.axes[0]
    title = " ".join(ax.get_title().split())  # the title wraps to the figure's width
    assert "every cell is a level the run trains on (at random needle depth)" in title
    assert not ax.patches and not figure.legends  # no outline around every cell


def test_copy_grid_holds_nothing_fixed_and_marks_its_ladder():
    task = _task("copy", ["len1-v2", "len2-v4", "len4-v8"])
    context = grid_context(task, ladder_grid(task))
    assert context["fixed"] == ""
    assert sum(map(sum, context["trained"])) == 3


def test_bars_label_every_axis_and_keep_long_titles_inside(figures):
    title = "reward by level (engine-decoded continuations of validation prompts)"
    report.plot_bars({"a": {"x": 1.2}}, "r.png", title, "reward", ylim=None, xlabel="level")
    (ax,) = _axes(figures[0])
    assert "\n" in ax.get_title() and ax.get_xlabel() == "level" and ax.get_ylabel() == "reward"
    assert [t.get_text() for t in ax.texts] == ["1.200"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a"]  # a single run is named too


def test_a_run_without_evaluations_gets_plots_that_say_so(figures):
    """A run stopped before its first evaluation: each plot states why it is empty, not blank axes."""
    report.plot_eval_history([], "h.png", "maze: evaluation", "exact_path", ["12x12"])
    report.plot_level_bars([], "exact_path", "b.png", "maze: exact_path per level", ["12x12"])
    for figure in figures:
        texts = [t.get_text() for ax in figure.axes for t in ax.texts]
        assert any("no evaluation was recorded" in t and "runners.evaluate" in t for t in texts)


def test_step_labels_of_a_long_run_stand_apart(figures):
    # A 13,000-step run evaluated every 500 steps once drew "105001200013500": labels a pixel apart.
    history = [
        {"step": s, "level": 0, "exact_path/20x20": s / 13000, "exact_path": s / 13000, "success_level0": 0.5}
        for s in range(500, 13001, 500)
    ]
    report.plot_eval_history(history, "h.png", "maze: evaluation", "exact_path", ["20x20"], 0)
    (figure,) = figures
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    labels = [t for t in _axes(figure)[0].get_xticklabels() if t.get_text()]
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda box: box.x0)
    widest = max(box.width for box in boxes)
    assert len(boxes) >= 3
    assert all(right.x0 - left.x1 > widest / 4 for left, right in itertools.pairwise(boxes))
