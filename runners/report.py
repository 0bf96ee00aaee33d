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
