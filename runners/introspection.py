"""Looking inside a backbone at eval time: attention maps, memory addressing and memory contents as images.

The backbone does the measuring: ``model(tokens, inspect=True)`` returns an ``Inspection`` of labelled maps
(every block's attention probabilities, each memory's addressing and a snapshot of each memory; see
``agents.backbones.base``). This module only draws them: one figure per map with one panel per head, axes
named after what they index, a labelled colour bar on every panel and a title naming the block. It runs on one
sample under ``no_grad``, only when an evaluation asks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from matplotlib.colors import PowerNorm
from matplotlib.ticker import MaxNLocator

from agents.backbones import Backbone, Inspection, InspectionMap
from runners.ddp import unwrap_model
from runners.logging import RunLogger

_PANEL_INCHES = (3.4, 2.9)  # width, height of one heat map with its colour bar
_MAX_COLUMNS = 4


@torch.no_grad()
def inspect_sample(backbone: Backbone | torch.nn.Module, tokens: torch.Tensor) -> Inspection:
    """What the backbone measures on ``tokens[:1]`` in eval mode (its train/eval mode is restored)."""
    model = unwrap_model(backbone)
    was_training = model.training
    try:
        model.eval()
        inspection = model(tokens[:1], inspect=True).inspection
    finally:
        model.train(was_training)
    return inspection


def readable(name: str) -> str:
    """``block0.read_weights`` -> ``block 0 · read weights``."""
    return re.sub(r"block(\d+)", r"block \1", name).replace(".", " · ").replace("_", " ")


def quantity(name: str) -> str:
    """What a map measures, for its colour bar: ``block0.read_weights`` -> ``read weights``."""
    return name.split(".", 1)[-1].replace("_", " ")


def map_figure(title: str, heatmap: InspectionMap, probabilities: bool = False, value: str = "value") -> Any:
    """One panel per map of the first sample in ``heatmap``, each with labelled axes and a colour bar
    labelled ``value`` (what the colours measure).

    ``probabilities`` puts every panel on one 0..1 scale with a square-root colour ramp, so that weak
    attention stays visible next to the first query's certain 1; maps with negative entries (weights,
    memory rows) use a diverging scale centred on zero; the rest a linear one per panel."""
    values = heatmap.values[0].detach().float().cpu()
    panels, rows, _ = values.shape
    columns = min(panels, _MAX_COLUMNS)
    grid_rows = math.ceil(panels / columns)
    height = min(_PANEL_INCHES[1], 1.1 + 0.2 * rows)  # a few rows (heads, usage) make a strip
    figure, axes = plt.subplots(
        grid_rows,
        columns,
        figsize=(_PANEL_INCHES[0] * columns, height * grid_rows + 0.4),
        squeeze=False,
        layout="constrained",
    )
    bound = float(values.abs().max()) or 1.0
    if probabilities:
        scale: dict[str, Any] = {"cmap": "magma", "norm": PowerNorm(0.5, vmin=0.0, vmax=1.0)}
    elif bool((values < 0).any()):
        scale = {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
    else:
        scale = {"cmap": "viridis"}
    for index, ax in enumerate(axes.flat):
        if index >= panels:
            ax.axis("off")
            continue
        image = ax.imshow(values[index].numpy(), aspect="auto", interpolation="nearest", **scale)
        colour_bar = figure.colorbar(image, ax=ax, fraction=0.08, pad=0.03)
        colour_bar.ax.tick_params(labelsize=7)
        colour_bar.set_label(value, fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(heatmap.cols, fontsize=8)
        if rows > 1:
            ax.set_ylabel(heatmap.rows, fontsize=8)
        else:
            ax.set_yticks([])
        ax.tick_params(labelsize=7)
        if heatmap.panel:
            ax.set_title(f"{heatmap.panel} {index}", fontsize=8)
    figure.suptitle(title, fontsize=9)
    return figure


def inspection_figures(inspection: Inspection, sample: str = "") -> Iterator[tuple[str, Any]]:
    """(tag, figure) for every map: ``attention/block<i>``, ``addressing/...`` and ``memory/...``; each
    title ends with ``sample`` (what was inspected, e.g. ``one 3x3 sample``) when given."""
    probability = "probability (√ colour scale)"
    on = f", {sample}" if sample else ""
    for name, heatmap in inspection.attention.items():
        title = f"{readable(name)} · attention probabilities{on}"
        yield f"attention/{name}", map_figure(title, heatmap, True, probability)
    for name, heatmap in inspection.addressing.items():
        yield f"addressing/{name}", map_figure(f"{readable(name)}{on}", heatmap, value=quantity(name))
    for name, heatmap in inspection.memory.items():
        title = f"{readable(name)} (after the sample){on}"
        yield f"memory/{name}", map_figure(title, heatmap, value=quantity(name))


def log_model_internals(
    backbone: torch.nn.Module, tokens: torch.Tensor, logger: RunLogger, step: int, sample: str = ""
) -> int:
    """Log every map of one inspected sample as ``inspect/<tag>`` images, titled with ``sample`` (what the
    tokens are, e.g. ``one 3x3 sample``); returns how many images."""
    if not logger.enabled:
        return 0
    count = 0
    for tag, figure in inspection_figures(inspect_sample(backbone, tokens), sample):
        logger.figure(f"inspect/{tag}", figure, step)
        count += 1
    return count
