"""What a curriculum reports: TensorBoard scalars and a level histogram, and a log line on level changes.

The values come from :meth:`curricula.core.Curriculum.summary` (one host copy, made only when logging).
Two sinks take them: a ``torch.utils.tensorboard.SummaryWriter`` and Stable-Baselines3's logger (whose
TensorBoard output writes tensors as histograms).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

logger = logging.getLogger("curricula")


def mean_level(summary: dict[str, Any]) -> float:
    """The expected ladder index of a new episode under the curriculum's distribution."""
    return float(sum(i * p for i, p in enumerate(summary["probabilities"])))


def level_sample(summary: dict[str, Any], size: int = 1000) -> np.ndarray:
    """The curriculum's distribution as ``size`` ladder indices in proportion (for histogram sinks)."""
    counts = np.round(np.asarray(summary["probabilities"], dtype=np.float64) * size).astype(np.int64)
    return np.repeat(np.arange(len(counts)), counts)


def scalars(summary: dict[str, Any], prefix: str = "curriculum") -> dict[str, float]:
    """Scalars to log: current level, expected level of a new episode, success rate per level, knobs."""
    values = {f"{prefix}/level": float(summary["level"]), f"{prefix}/mean_level": mean_level(summary)}
    for name, rate, seen in zip(summary["level_names"], summary["success_rate"], summary["window_episodes"]):
        if seen > 0:
            values[f"{prefix}/success_rate/{name}"] = rate
    for knob, value in summary["knobs"].items():
        values[f"{prefix}/knob/{knob}"] = float(value)
    return values


def write_tensorboard(writer: Any, summary: dict[str, Any], step: int, prefix: str = "curriculum") -> None:
    """Scalars and a histogram of the levels new episodes are drawn at to a ``SummaryWriter``."""
    for tag, value in scalars(summary, prefix).items():
        writer.add_scalar(tag, value, step)
    edges = np.arange(len(summary["level_names"]) + 1) - 0.5
    writer.add_histogram(f"{prefix}/levels", level_sample(summary), step, bins=edges)


def record_sb3(sb3_logger: Any, summary: dict[str, Any], prefix: str = "curriculum") -> None:
    """Scalars and the level histogram to an SB3 logger (the histogram only to TensorBoard)."""
    for tag, value in scalars(summary, prefix).items():
        sb3_logger.record(tag, value)
    sb3_logger.record(
        f"{prefix}/levels",
        torch.as_tensor(level_sample(summary)),
        exclude=("stdout", "log", "json", "csv"),
    )


def level_change_line(summary: dict[str, Any], previous: int, step: int) -> str:
    """The line logged when the schedule's level changes, with the evidence for the move."""
    names = summary["level_names"]
    level = summary["level"]
    rate = summary["success_rate"][previous]
    seen = summary["window_episodes"][previous]
    return (
        f"curriculum level {previous} ({names[previous]}) -> {level} ({names[level]}) at step {step}: "
        f"success {rate:.2f} over the last {seen} episodes of {names[previous]}"
    )
