"""Recall grids drawn as heatmaps: a family's titles and axis labels, what a grid holds fixed, and the figure.

``heatmap_figure(report, context)`` draws one metric of a :class:`~envs.recall.evaluate.GridReport` with the
value printed in each cell, grey cells where the grid has no level, a labelled colour bar, a red outline
inside each cell ``grid_context`` marks as a level the run trains on, and a legend under the axes. It
returns a matplotlib ``Figure`` (no pyplot state, constrained layout), which ``GridReport.save``, the recall
runner's TensorBoard images and its report all use.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from envs.recall.evaluate import Grid, GridReport
    from envs.recall.task import RecallTask

FAMILY_TITLES = {
    "copy": "copy",
    "repeat_copy": "repeat-copy",
    "associative": "associative recall",
    "needle": "needle in a haystack",
}

AXIS_LABELS = {
    ("copy", "length"): "length (symbols to copy)",
    ("repeat_copy", "length"): "length (symbols to copy)",
    ("associative", "length"): "sequence length (tokens)",
    "vocab": "vocabulary (symbols)",
    "pairs": "key-value pairs",
    "repeats": "repeats",
    "depth": "needle depth (fraction of context)",
    "context_bytes": "context (bytes)",
}

METRIC_LABELS = {
    "exact_match": "exact-match rate (fraction of sequences)",
    "accuracy": "answer accuracy (fraction of tokens)",
}


def axis_label(family: str, name: str) -> str:
    """A grid axis's label with its unit (``length`` counts symbols in copy, tokens in associative recall)."""
    return AXIS_LABELS.get((family, name)) or AXIS_LABELS.get(name) or name


def grid_context(task: RecallTask, grid: Grid) -> dict[str, Any]:
    """What a grid evaluates besides its two axes, for the heatmap's title, and which cells are levels
    the run trains on.

    ``fixed`` names every level field that is the same in all cells (``vocab 64``) or equal to an axis
    (``queries = pairs``): a grid over a ladder whose levels differ in a third field (associative recall
    trains at vocabularies 4 to 64) holds it at one value, so an early level scores 0 there while it
    scored 1 in training. ``trained[r][c]`` is True where the cell is a ladder level (names aside); a
    ladder level that leaves a field random (None) trains every cell along it, and ``random`` names the
    grid axes the ladder leaves random (the needle's depth).
    """
    cells = [level for row in grid.levels for level in row if level is not None]
    if not cells:
        return {"fixed": "", "trained": [], "random": []}
    axes = (grid.row_name, grid.col_name)
    fixed = []
    for f in dataclasses.fields(cells[0]):
        if f.name == "name" or f.name in axes:
            continue
        values = {getattr(c, f.name) for c in cells}
        if len(values) == 1:
            value, trained_at = values.pop(), sorted({getattr(lv, f.name) for lv in task.ladder})
            ladder = f" (the ladder trains at {f.name} {trained_at[0]} to {trained_at[-1]})"
            fixed.append(f"{f.name} {value}" + (ladder if len(trained_at) > 1 else ""))
            continue
        same = [a for a in axes if all(getattr(c, f.name) == getattr(c, a) for c in cells)]
        if same:
            fixed.append(f"{f.name} = {same[0]}")

    def fields(level: Any) -> dict[str, Any]:
        return {f.name: getattr(level, f.name) for f in dataclasses.fields(level) if f.name != "name"}

    def trains_on(level: Any) -> bool:
        """A ladder level with a field left random (None: the needle's depth) trains every value of it."""
        cell = fields(level)
        return any(all(v is None or cell.get(k) == v for k, v in fields(lv).items()) for lv in task.ladder)

    trained = [[level is not None and trains_on(level) for level in row] for row in grid.levels]
    random_axes = [a for a in axes if any(getattr(lv, a, 0) is None for lv in task.ladder)]
    return {"fixed": ", ".join(fixed), "trained": trained, "random": random_axes}


def heatmap_figure(
    report: GridReport, context: dict[str, Any] | None = None, label: str = "", metric: str = "exact_match"
) -> Any:
    """``metric`` of ``report`` as a heatmap Figure: the title names the family, what the grid holds fixed
    (``context["fixed"]``, e.g. the vocabulary) and the sequences per cell; red outlines mark the cells
    ``context["trained"]`` flags."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    rows, cols = report.row_values, report.col_values
    values = [[np.nan if v is None else float(v) for v in row] for row in getattr(report, metric)]
    grid = np.array(values, dtype=float).reshape(len(rows), len(cols))
    context = context or {}
    fixed, outlined = context.get("fixed"), context.get("trained") or []
    random_axes = [axis_label(report.family, a).split(" (")[0] for a in context.get("random") or []]
    trained = "a level the run trains on" + (f" (at random {', '.join(random_axes)})" if random_axes else "")
    flags = [on for row in outlined for on in row]
    title = f"{label + ': ' if label else ''}{FAMILY_TITLES.get(report.family, report.family)}, "
    title += f"{metric.replace('_', ' ')} per cell" + (f"\nat {fixed}; " if fixed else "\n")
    title += f"{report.sequences_per_cell} sequences a cell"
    if flags and all(flags):  # the ladder covers the grid: say so once rather than outline every cell
        title += f"\nevery cell is {trained}"
        outlined = []
    # Constrained layout keeps the title, the colour bar's label and the legend under the x-axis label
    # apart at any grid size; a small grid still gets a figure wide and tall enough for them.
    size = (max(5.0, 2.4 + 0.75 * len(cols)), max(3.4, 1.9 + 0.5 * len(rows)))
    figure = Figure(figsize=size, layout="constrained")
    ax = figure.subplots()
    ax.set_facecolor("0.9")
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel(axis_label(report.family, report.col_name))
    ax.set_ylabel(axis_label(report.family, report.row_name))
    width = max(20, int(figure.get_figwidth() * 11))  # about 11 characters an inch at font size 9
    ax.set_title("\n".join(textwrap.fill(line, width) for line in title.split("\n")), fontsize=9)
    for i, j in np.ndindex(grid.shape):
        v = grid[i, j]
        if math.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        else:
            ax.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="0.5")
    for i, j in ((i, j) for i, row in enumerate(outlined) for j, on in enumerate(row) if on):
        # inset, so that two trained cells side by side stay two outlines, not one merged block
        box = Rectangle((j - 0.44, i - 0.44), 0.88, 0.88, fill=False, edgecolor="red", linewidth=1.8)
        ax.add_patch(box)
    handles = []
    if any(any(row) for row in outlined):
        handles.append(Patch(facecolor="none", edgecolor="red", linewidth=1.8, label=trained))
    if not np.isfinite(grid).all():
        handles.append(Patch(facecolor="0.9", edgecolor="0.7", label="n/a: no such level"))
    if handles:
        figure.legend(handles=handles, loc="outside lower center", fontsize=7, frameon=False, ncols=2)
    colour_bar = figure.colorbar(image, ax=ax)
    colour_bar.set_label(METRIC_LABELS.get(metric, metric).replace(" (", "\n("), fontsize=8)
    return figure
