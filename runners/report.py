"""Evaluation reports: ``report.json`` plus PNG plots, written into a run's output folder.

A report is a plain JSON dict. The runners fill it with the run's config, the eval history (one record of
scalar metrics per eval) and family-specific summaries; :mod:`runners.evaluate` fills it with one entry
per checkpoint so several runs sit side by side. Plots use matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def _json_safe(value: Any) -> Any:
    """Make numbers JSON-clean (NaN/inf become null) and tuples lists, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):
        return _json_safe(value.item())
    return value


def write_report(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``report`` as indented JSON, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_json_safe(report), indent=2, sort_keys=False))
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------- console tables

HEADLINES = {"maze": "exact_path", "recall": "exact_match", "generation": "reward"}
"""Each runner's headline metric (its Experiment's ``headline``), for reports that do not name it."""

LOWER_IS_BETTER = ("bits_per_char", "loss", "ce")
"""Metrics whose best value is the smallest (every other metric is better when higher)."""


def is_lower_better(metric: str) -> bool:
    return metric.split("/")[0].endswith(LOWER_IS_BETTER)


def report_headline(report: Mapping[str, Any]) -> str | None:
    """The headline metric of a run's report: the ``<metric>_by_level`` entry the experiment wrote, else
    the runner's known headline."""
    for key in report:
        if key.endswith("_by_level"):
            return key[: -len("_by_level")]
    return HEADLINES.get(str(report.get("runner")))


def history_levels(history: Sequence[Mapping[str, Any]], metric: str) -> list[str]:
    """The level names that ``<metric>/<level>`` entries of ``history`` measure, in order of first sight."""
    names: list[str] = []
    prefix = f"{metric}/"
    for record in history:
        names += [k[len(prefix) :] for k in record if k.startswith(prefix) and k[len(prefix) :] not in names]
    return names


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def final_and_best(history: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any] | None:
    """The last and the best value of ``key`` over ``history``, with their steps and the number of
    evaluations that measured it; None when no record has it."""
    points = [(record.get("step"), record[key]) for record in history if _number(record.get(key))]
    if not points:
        return None
    pick = min if is_lower_better(key) else max
    best_step, best = pick(points, key=lambda p: p[1])
    final_step, final = points[-1]
    return {
        "final": final,
        "final_step": final_step,
        "best": best,
        "best_step": best_step,
        "evaluations": len(points),
    }


def level_results(
    history: Sequence[Mapping[str, Any]], metric: str, level_names: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """``{level: final_and_best(history, "<metric>/<level>")}`` for every level the history measured,
    in ladder order when ``level_names`` is given."""
    seen = history_levels(history, metric)
    order = [n for n in (level_names or []) if n in seen] + [n for n in seen if n not in (level_names or [])]
    results = {name: final_and_best(history, f"{metric}/{name}") for name in order}
    return {name: r for name, r in results.items() if r is not None}


def level_independent(history: Sequence[Mapping[str, Any]], metric: str) -> list[str]:
    """The history's metrics that no level qualifies (e.g. ``bits_per_char``): not the per-level ones
    (nor their current-level copies and means), the step, the level, timings or throughput."""
    per_level = {k.split("/")[0] for record in history for k in record if "/" in k}
    skip = {"step", "level", "score", "seconds", "minutes", f"{metric}_mean"}
    return [
        key
        for key in dict.fromkeys(k for record in history for k in record)
        if "/" not in key
        and key not in skip
        and key not in per_level
        and not key.endswith("per_s")
        and not key.startswith("success_level")
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """A plain-text table: columns padded to their widest cell, the first left-aligned and the others
    right-aligned, a rule under the header. Floats are written with 3 decimals; None as a dash."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3f}" if math.isfinite(value) else str(value)
        return str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))]
        return (indent + "  ".join(parts)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(list(headers)), rule, *(line(r) for r in cells)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as GitHub markdown (floats with 3 decimals, None as a dash)."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) and math.isfinite(value) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_table(report: Mapping[str, Any]) -> str:
    """The end-of-run table: per level, the final and the best value of the run's headline metric (from
    ``report["history"]``, so the numbers are report.json's), then the level-independent metrics (e.g.
    bits per character) the same way."""
    history = report.get("history") or []
    metric = report_headline(report)
    if not history or metric is None:
        return "  (no evaluation was recorded)"
    names = (report.get("curriculum") or {}).get("level_names") or []
    levels = level_results(history, metric, names)
    better = "lowest" if is_lower_better(metric) else "highest"
    last_step = history[-1].get("step")
    rows = []
    for name, r in levels.items():
        kept = r["final"] / r["best"] if r["best"] and not is_lower_better(metric) else None
        final = r["final"] if r["final_step"] == last_step else f"{r['final']:.3f} (step {r['final_step']})"
        rows.append(
            [
                name,
                final,
                r["best"],
                r["best_step"],
                f"{kept:.0%}" if kept is not None else "-",
                r["evaluations"],
            ]
        )
    headers = ["level", f"{metric} final", f"{metric} best", "best at step", "final/best", "evals"]
    text = [
        f"{metric} per level (final: the last evaluation of the level; best: the {better} of any):",
        format_table(headers, rows),
    ]
    extra_rows = []
    for key in level_independent(history, metric):
        r = final_and_best(history, key)
        if r is not None:
            extra_rows.append([key, r["final"], r["best"], r["best_step"]])
    if extra_rows:
        text += ["", format_table(["metric", "final", "best", "best at step"], extra_rows)]
    return "\n".join(text)


def wrap_title(title: str, figure: Any, per_inch: float = 11.0) -> str:
    """``title`` with each line wrapped to what the figure's width holds (about 11 characters an inch at
    font size 9), so no title is cut at the edges."""
    width = max(20, int(figure.get_figwidth() * per_inch))
    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if figure.get_layout_engine() is None:  # a figure drawn with its own (constrained) layout keeps it
        figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


STEP_LABEL = "training step (optimiser steps)"


def _no_evaluation(path: str | Path, title: str) -> Path:
    """A plot that says why it is empty: the run stopped before its first evaluation, so there is nothing
    to draw (blank axes would read as a failed plot or a score of zero)."""
    figure, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.axis("off")
    ax.set_title(wrap_title(title, figure), fontsize=9)
    ax.text(
        0.5,
        0.5,
        "no evaluation was recorded:\nthe run stopped before its first one\n(trainer.eval_every); score the "
        "checkpoint\nwith python -m runners.evaluate",
        ha="center",
        va="center",
        fontsize=9,
    )
    return _save(figure, Path(path))

UNITS = {
    "exact_path": "exact-path rate (fraction of mazes)",
    "near_optimal": "within-1.05x-of-shortest rate (fraction of mazes)",
    "success": "success rate (fraction of episodes)",
    "exact_match": "exact-match rate (fraction of sequences)",
    "accuracy": "answer accuracy (fraction of tokens)",
    "reward": "reward (weighted sum, per episode)",
    "bits_per_char": "bits per character (lower is better)",
    "reference_bits_per_char": "bits per character (lower is better)",
    "score": "score at the curriculum level",
}
"""Axis labels with units for the metrics the runners report."""

FRACTIONS = ("exact_path", "near_optimal", "success", "exact_match", "accuracy")


def axis_label(metric: str) -> str:
    """The y-axis label of ``metric``: its name with units (``exact-path rate (fraction of mazes)``)."""
    base = metric.split("/")[0]
    if base in UNITS:
        return UNITS[base]
    if base.endswith("_mean") and base[: -len("_mean")] in UNITS:
        return f"{UNITS[base[: -len('_mean')]]}, mean over levels"
    if base.startswith("reward_"):
        return f"{base[len('reward_') :]} component (per episode)"
    return base


def _fraction_axis(ax: Any, metric: str) -> None:
    if metric.split("/")[0].removesuffix("_mean") in FRACTIONS:
        ax.set_ylim(-0.03, 1.03)


def level_changes(
    history: Sequence[Mapping[str, Any]], final_level: int | None = None
) -> list[tuple[float, int]]:
    """``(step, new level)`` for each move of the curriculum seen in ``history``: a record's ``level`` is
    the level its evaluation measured, so a move shows at the evaluation before the first record at the
    new level (the move happened there, or, with RL steps, in the steps after it). ``final_level``, the
    curriculum's level when the run ended, adds a move after the last evaluation that no record shows."""
    changes = []
    for before, after in itertools.pairwise(history):
        if isinstance(before.get("level"), int) and after.get("level") != before.get("level"):
            changes.append((before["step"], int(after["level"])))
    last = history[-1] if history else {}
    if final_level is not None and isinstance(last.get("level"), int) and last["level"] != final_level:
        changes.append((last["step"], int(final_level)))
    return changes


def plot_eval_history(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    title: str,
    metric: str | None = None,
    level_names: Sequence[str] | None = None,
    final_level: int | None = None,
) -> Path:
    """The evaluation history as a researcher reads it: one panel per metric, one line per level
    (``<metric>/<level>`` entries, so a level change is no fake collapse) named in one legend beside the
    panels, dotted vertical lines where the curriculum moved (named with the new level above the panel),
    and the level-independent metrics (bits per character, ...) in panels of their own. Every axis is
    labelled with its units."""
    if not history:
        return _no_evaluation(path, title)
    names = list(level_names or [])
    levels = history_levels(history, metric) if metric else []
    levels = [n for n in names if n in levels] + [n for n in levels if n not in names]
    keys = list(dict.fromkeys(k for record in history for k in record))
    per_level = list(
        dict.fromkeys(k.split("/", 1)[0] for k in keys if "/" in k and k.split("/", 1)[1] in levels)
    )
    if metric in per_level:
        per_level.remove(metric)
        per_level.insert(0, metric)
    skip = {"step", "level", "score", "seconds", "minutes", *per_level, *(f"{m}_mean" for m in per_level)}
    single = [
        k
        for k in keys
        if k not in skip
        and "/" not in k
        and not k.endswith("per_s")
        and not k.startswith("success_level")
        and any(_number(h.get(k)) for h in history)
    ]
    if not per_level and "score" in keys:
        single.insert(0, "score")
    references = {m: f"reference_{m}" for m in single if f"reference_{m}" in single}  # drawn with m
    single = [m for m in single if m not in references.values()]
    panels = [(m, True) for m in per_level] + [(m, False) for m in single]
    cols = min(max(len(panels), 1), 3)
    rows = max(1, -(-len(panels) // cols))
    size = (4.6 * cols + 1.2, 3.4 * rows + 0.4)  # + the level legend on the right and a two-line title
    figure, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")
    level_lines: dict[str, Any] = {}  # one legend entry per level, shared by every per-level panel
    for ax in axes.flat:
        ax.axis("off")
    colours = plt.get_cmap("viridis")
    changes = level_changes(history, final_level)
    for ax, (name, by_level) in zip(axes.flat, panels):
        ax.axis("on")
        series = [(lv, f"{name}/{lv}") for lv in levels] if by_level else [(None, name)]
        for i, (level, key) in enumerate(series):
            points = [(h["step"], h[key]) for h in history if _number(h.get(key))]
            if not points:
                continue
            colour = colours(i / max(len(series) - 1, 1) * 0.85) if by_level else None
            (line,) = ax.plot(*zip(*points), marker="o", markersize=3, color=colour, label=level or name)
            if level is not None:
                level_lines.setdefault(level, line)
        if name in references:  # e.g. the n-gram judge's own bits per character, for scale
            ref = [(h["step"], h[references[name]]) for h in history if _number(h.get(references[name]))]
            ax.plot(*zip(*ref), color="0.4", linestyle="--", label=references[name])
            ax.legend(fontsize=7)
        _mark_level_changes(ax, changes, names)
        ax.set_title(f"{name} per level" if by_level else name, fontsize=9)
        ax.set_xlabel(STEP_LABEL, fontsize=8)
        # whole steps, and few enough ticks that five-digit step counts do not run into each other
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.set_ylabel(axis_label(name), fontsize=8)
        _fraction_axis(ax, name)
        ax.grid(alpha=0.3)
    if level_lines:  # outside the panels, so no point hides behind it; one level too says which it is
        order = [lv for lv in levels if lv in level_lines]
        place = {"loc": "outside right upper", "fontsize": 8, "title_fontsize": 8}
        figure.legend([level_lines[lv] for lv in order], order, title="level", **place)
    if changes:
        title += "\n(dotted, labelled on top: the evaluations after which the curriculum moved to that level)"
    figure.suptitle(title, fontsize=10)
    return _save(figure, Path(path))


def _mark_level_changes(ax: Any, changes: Sequence[tuple[float, int]], names: Sequence[str]) -> None:
    """A dotted vertical line at each curriculum move, named (``→ 4x4``) on a tick axis above the panel, so
    no label covers a data point."""
    if not changes:
        return
    for step, _ in changes:
        ax.axvline(step, color="0.45", linestyle=":", linewidth=1)
    labels = [f"→ {names[new] if 0 <= new < len(names) else f'level {new}'}" for _, new in changes]
    top = ax.secondary_xaxis("top")
    top.set_xticks([step for step, _ in changes], labels)
    top.tick_params(axis="x", labelsize=7, labelcolor="0.3", color="0.45", labelrotation=30, length=3)
    for label in top.get_xticklabels():
        label.set_horizontalalignment("left")


def plot_level_bars(
    history: Sequence[Mapping[str, Any]],
    metric: str,
    path: str | Path,
    title: str,
    level_names: Sequence[str] | None = None,
) -> Path:
    """Per level, the best and the final value of ``metric`` over the evaluation history side by side
    (the numbers of the end-of-run table), each bar labelled with its value."""
    levels = level_results(history, metric, level_names)
    if not levels:
        return _no_evaluation(path, title)
    groups = {
        "best": {name: r["best"] for name, r in levels.items()},
        "final": {name: r["final"] for name, r in levels.items()},
    }
    last = history[-1].get("step") if history else None
    better = "lowest" if is_lower_better(metric) else "highest"
    subtitle = f"best: {better} evaluation; final: step {last}"
    ylim = (0, 1.08) if metric in FRACTIONS else None
    return plot_bars(
        groups,
        path,
        f"{title}\n{subtitle}",
        axis_label(metric),
        ylim=ylim,
        xlabel="level",
        annotate=True,
        colors={"best": "#9ecae1", "final": "#08519c"},
    )


def plot_bars(
    groups: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str,
    ylabel: str,
    ylim: tuple | None = (0, 1.08),
    xlabel: str | None = None,
    annotate: bool = True,
    colors: Mapping[str, str] | None = None,
) -> Path:
    """Grouped bar chart: ``groups[series][category] = value`` (e.g. runs x maze sizes -> accuracy), each
    bar labelled with its value when ``annotate`` and there are few enough bars to read them; the legend
    names every series, a single run's too."""
    series = list(groups)
    categories: list[str] = []
    for values in groups.values():
        categories += [c for c in values if c not in categories]
    width = 0.8 / max(len(series), 1)
    figure, ax = plt.subplots(figsize=(max(5.6, 1.1 * len(categories) * max(1, len(series)) ** 0.5), 3.8))
    label_bars = annotate and len(series) * len(categories) <= 40
    for i, name in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(categories))]
        ys = [groups[name].get(c, float("nan")) for c in categories]
        bars = ax.bar(xs, ys, width=width, label=name, color=(colors or {}).get(name))
        if label_bars:
            ax.bar_label(
                bars, labels=[f"{y:.3f}" if math.isfinite(y) else "" for y in ys], fontsize=7, padding=1
            )
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    else:
        ax.margins(y=0.12)  # room for the value labels
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    ax.set_title(wrap_title(title, figure, 10), fontsize=10)
    if series:  # one run too: the legend names the run the bars measured
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, Path(path))


def save_figure(figure: Any, path: str | Path) -> Path:
    """Write a matplotlib figure as a PNG (dpi 110) and close it."""
    return _save(figure, Path(path))
