"""Hydra callbacks the runners' configs register (``hydra.callbacks`` in ``runners/conf/<runner>.yaml``).

:class:`SummarizeMultirun` writes :mod:`runners.summarize`'s table and plot into the sweep folder when a
``-m`` run ends, so ``python -m runners.maze -m backbone=transformer,hebbian seed=0,1`` closes with one
table across its jobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SummarizeMultirun(Callback):
    """At the end of a multirun, summarize its jobs (:func:`runners.summarize.summarize`).

    A summary that fails (say, every job failed before writing a report) prints why and leaves the
    multirun's own result alone: the jobs are done and their folders complete either way.
    """

    def __init__(self, enabled: bool = True, seed_keys: list[str] | None = None) -> None:
        self.enabled = enabled
        self.seed_keys = tuple(seed_keys or ("seed",))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from runners.summarize import summarize  # imported late: matplotlib only when summarizing

        folder = Path(str(config.hydra.sweep.dir))
        try:
            print()
            summarize(folder, self.seed_keys)
        except Exception as err:  # a summary must never fail the finished sweep
            print(f"No multirun summary for {folder}: {type(err).__name__}: {err}")
            print(f"Run it by hand: python -m runners.summarize {folder}")
