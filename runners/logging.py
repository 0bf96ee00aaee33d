"""TensorBoard logging for a run: scalars, hyper-parameters, figures and text, written by rank 0 only.

A thin layer over ``torch.utils.tensorboard.SummaryWriter`` that (a) is a no-op on non-main DDP ranks, so
runner code never branches on the rank, (b) takes dicts of scalars that may still be tensors and converts
them in one place, where logging is due, and (c) writes hyper-parameters into the run's own event file
instead of the separate sub-run ``SummaryWriter.add_hparams`` creates.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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


@contextmanager
def ticking_status(bar: Any, text: str, every_s: float = 1.0) -> Iterator[None]:
    """Show ``text`` and the seconds spent so far in a tqdm ``bar``'s postfix, refreshed every ``every_s``
    seconds until the block ends, so a long evaluation never looks like a frozen bar.

    A daemon thread does the refreshing (tqdm bars lock their own writes); a disabled bar is left alone.
    """
    if bar is None or getattr(bar, "disable", True):
        yield
        return
    done = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        while True:
            bar.set_postfix_str(f"{text} {time.monotonic() - start:.0f}s", refresh=True)
            if done.wait(every_s):
                return

    thread = threading.Thread(target=tick, name="status-ticker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def level_label(experiment: Any) -> str:
    """``"1 4x4"``: an experiment's curriculum level index and its name (the index alone without names)."""
    level = int(experiment.level)
    names = getattr(getattr(experiment, "curriculum", None), "level_names", None) or []
    return f"{level} {names[level]}" if 0 <= level < len(names) else str(level)


def eval_postfix(record: Mapping[str, Any], experiment: Any) -> str:
    """An evaluation for the progress bar: the headline metric by its name at the level it measured,
    e.g. ``exact_path 0.844 @3x3``."""
    metric = getattr(experiment, "headline", "score")
    scored = int(record.get("level", experiment.level))
    names = getattr(getattr(experiment, "curriculum", None), "level_names", None) or []
    name = names[scored] if 0 <= scored < len(names) else f"level {scored}"
    return f"{metric} {float(record.get('score', float('nan'))):.3f} @{name}"
