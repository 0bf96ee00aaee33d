"""Evaluation reports: ``report.json`` plus PNG plots, written into a run's output folder.

A report is a plain JSON dict. The runners fill it with the run's config, the eval history (one record of
scalar metrics per eval) and family-specific summaries; :mod:`runners.evaluate` fills it with one entry
per checkpoint so several runs sit side by side. Plots use matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


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
    per_level = {k.split("/")[0] for record in history for k in record if "/" in k}
    skip = {"step", "level", "score", "seconds", f"{metric}_mean"}
    extras = [
        key
        for key in dict.fromkeys(k for record in history for k in record)
        if "/" not in key
        and key not in skip
        and key not in per_level
        and not key.endswith("per_s")
        and not key.startswith("success_level")
    ]
    extra_rows = []
    for key in extras:
        r = final_and_best(history, key)
        if r is not None:
            extra_rows.append([key, r["final"], r["best"], r["best_step"]])
    if extra_rows:
        text += ["", format_table(["metric", "final", "best", "best at step"], extra_rows)]
    return "\n".join(text)


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_history(
    history: Sequence[Mapping[str, Any]], keys: Sequence[str], path: str | Path, title: str
) -> Path:
    """Line plots of ``keys`` over ``history[i]["step"]``, one panel per key that has values (4 a row)."""
    present = [k for k in keys if any(isinstance(h.get(k), int | float) for h in history)]
    cols = min(max(len(present), 1), 4)
    rows = max(1, -(-len(present) // cols))
    figure, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, key in zip(axes.flat, present):
        points = [(h["step"], h[key]) for h in history if isinstance(h.get(key), int | float)]
        ax.axis("on")
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    return _save(figure, Path(path))


def plot_bars(
    groups: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str,
    ylabel: str,
    ylim: tuple | None = (0, 1),
) -> Path:
    """Grouped bar chart: ``groups[series][category] = value`` (e.g. runs x maze sizes -> accuracy)."""
    series = list(groups)
    categories: list[str] = []
    for values in groups.values():
        categories += [c for c in values if c not in categories]
    width = 0.8 / max(len(series), 1)
    figure, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(categories) * max(1, len(series)) ** 0.5), 3.4))
    for i, name in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(categories))]
        ys = [groups[name].get(c, float("nan")) for c in categories]
        ax.bar(xs, ys, width=width, label=name)
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(figure, Path(path))


def heatmap_figure(
    values: Sequence[Sequence[float]],
    rows: Sequence[Any],
    cols: Sequence[Any],
    title: str,
    xlabel: str,
    ylabel: str,
) -> Any:
    """A matplotlib figure of a 2-D grid of values in [0, 1] with the value printed in each cell."""
    figure, ax = plt.subplots(figsize=(1.0 + 0.6 * len(cols), 1.0 + 0.45 * len(rows)))
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if isinstance(v, int | float) and math.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
    figure.colorbar(image, ax=ax)
    return figure
