"""TensorBoard logging for a run: scalars, hyper-parameters, figures and text, written by rank 0 only.

A thin layer over ``torch.utils.tensorboard.SummaryWriter`` that (a) is a no-op on non-main DDP ranks, so
runner code never branches on the rank, (b) takes dicts of scalars that may still be tensors and converts
them in one place, where logging is due, and (c) writes hyper-parameters into the run's own event file
instead of the separate sub-run ``SummaryWriter.add_hparams`` creates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

Scalar = float | int | torch.Tensor


def to_float(value: Scalar) -> float:
    """A Python float from a number or a 0-d / 1-element tensor (the one place metrics reach the host)."""
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean().cpu())
    return float(value)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and tuples become strings (hparams take no lists)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            out[name] = str(list(value))
        else:
            out[name] = value
    return out


class RunLogger:
    """Writes a run's TensorBoard events under ``log_dir``; every method does nothing when not ``enabled``."""

    def __init__(self, log_dir: str | Path, enabled: bool = True, flush_secs: int = 30):
        self.log_dir = Path(log_dir)
        self.enabled = enabled
        self.writer = SummaryWriter(str(self.log_dir), flush_secs=flush_secs) if enabled else None

    def scalars(self, prefix: str, values: Mapping[str, Scalar], step: int) -> dict[str, float]:
        """Log ``prefix/name`` for each value; returns the values as floats (NaN and inf are skipped)."""
        floats = {name: to_float(v) for name, v in values.items()}
        if self.writer is not None:
            for name, value in floats.items():
                if math.isfinite(value):
                    self.writer.add_scalar(f"{prefix}/{name}", value, step)
        return floats

    def figure(self, tag: str, figure: Any, step: int) -> None:
        """Log a matplotlib figure as an image and close it."""
        if self.writer is not None:
            self.writer.add_figure(tag, figure, step, close=True)
        else:
            import matplotlib.pyplot as plt

            plt.close(figure)

    def image(self, tag: str, image: torch.Tensor, step: int, dataformats: str = "HWC") -> None:
        """Log an image tensor (uint8 0-255 or float 0-1)."""
        if self.writer is not None:
            self.writer.add_image(tag, image, step, dataformats=dataformats)

    def text(self, tag: str, text: str, step: int) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text, step)

    def hparams(self, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """Record the run's flattened config and the metrics it is judged by in the HPARAMS tab."""
        if self.writer is None:
            return
        flat = {
            k: (v if isinstance(v, bool | int | float | str) else str(v)) for k, v in flatten(params).items()
        }
        experiment, session_start, session_end = hparams_summary(flat, dict(metrics))
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, session_start, session_end):
            file_writer.add_summary(summary)
        for name, value in metrics.items():
            if math.isfinite(value):
                self.writer.add_scalar(name, value)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
