"""A run's checkpoints: ``latest.pt`` (to resume) and ``best_level<k>.pt`` (best eval score per level).

Files are written atomically by :func:`foundation.checkpoint.save_checkpoint`, so a crash or Ctrl-C
mid-write leaves the previous file intact, and read with ``weights_only=True``. ``best.json`` records the
score behind each best file so a resumed run keeps improving on it rather than overwriting it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

LATEST = "latest.pt"


def best_name(level: int) -> str:
    return f"best_level{int(level)}.pt"


class CheckpointManager:
    """Keeps ``latest.pt`` and the best checkpoint per curriculum level in ``directory``.

    ``enabled=False`` (non-main DDP ranks) turns every write into a no-op; reads still work. ``stamp``
    holds entries every checkpoint written here carries besides the state (the run's command-line
    overrides, so that a resume can keep the record of them).
    """

    def __init__(self, directory: str | Path, enabled: bool = True, stamp: dict[str, Any] | None = None):
        self.directory = Path(directory)
        self.enabled = enabled
        self.stamp = dict(stamp or {})
        self._best: dict[int, float] = self._read_best()

    @property
    def latest_path(self) -> Path:
        return self.directory / LATEST

    def best_scores(self) -> dict[int, float]:
        """The score of each level's best checkpoint so far."""
        return dict(self._best)

    def save_latest(self, state: dict[str, Any]) -> Path | None:
        """Atomically replace ``latest.pt`` with ``state``."""
        if not self.enabled:
            return None
        return save_checkpoint({**state, **self.stamp}, self.latest_path)

    def update_best(self, level: int, score: float, state: dict[str, Any]) -> bool:
        """Save ``state`` as the best of ``level`` when ``score`` beats the previous best; True if saved."""
        level = int(level)
        if not self.enabled or score <= self._best.get(level, float("-inf")):
            return False
        save_checkpoint({**state, **self.stamp}, self.directory / best_name(level))
        self._best[level] = float(score)
        self._write_best()
        return True

    def _read_best(self) -> dict[int, float]:
        path = self.directory / "best.json"
        if not path.is_file():
            return {}
        try:
            return {int(k): float(v) for k, v in json.loads(path.read_text()).items()}
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError) as err:
            raise CheckpointError(
                f"{path} is not a record of best scores ({type(err).__name__}: {err}); it maps level "
                'indices to scores, e.g. {"0": 0.5}. Delete it to start the best checkpoints afresh.'
            ) from None

    def _write_best(self) -> None:
        path = self.directory / "best.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({str(k): v for k, v in sorted(self._best.items())}, indent=2))
        os.replace(tmp, path)


def resolve_resume(resume: bool | str | None, run_dir: str | Path) -> Path | None:
    """The checkpoint file a run resumes from, or None for a fresh start.

    ``resume`` is False/None (fresh), True (``latest.pt`` in this run's output folder), the path of a
    checkpoint file, or the path of an earlier run's output folder (its ``checkpoints/latest.pt``).
    """
    if resume is None or resume is False or (isinstance(resume, str) and resume.lower() in ("", "false")):
        return None
    if resume is True or (isinstance(resume, str) and resume.lower() == "true"):
        path = Path(run_dir) / "checkpoints" / LATEST
        if not path.is_file():
            raise CheckpointError(
                f"resume=true found no checkpoint at {path}. Point Hydra at the earlier run's folder "
                "(resume=true hydra.run.dir=outputs/<date>/<time>) or pass resume=<path/to/checkpoint.pt>."
            )
        return path
    path = Path(str(resume)).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / LATEST, path / LATEST):
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"resume={resume!r} is a folder without checkpoints/{LATEST}; pass a run's output folder "
            "or a checkpoint file."
        )
    if not path.is_file():
        raise CheckpointError(
            f"resume={resume!r}: no such checkpoint file; use resume=true, a checkpoint path or a run folder."
        )
    return path


RUN_ENTRIES = ("runner", "step", "config", "experiment", "rng")


@dataclass
class ResumePoint:
    """A run's checkpoint to continue: where it is and what it holds (:func:`runners.loop.checkpoint_state`).

    ``config`` is the run's own config, resolved, from which a resume rebuilds the run
    (:func:`runners.config.resume_config`); ``overrides`` the command line that made it, when known.
    """

    path: Path
    state: dict[str, Any]

    @property
    def runner(self) -> str:
        return str(self.state["runner"])

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def config(self) -> dict[str, Any]:
        return self.state["config"]

    @property
    def overrides(self) -> list[str] | None:
        saved = self.state.get("overrides")
        return None if saved is None else [str(o) for o in saved]


def load_resume_state(resume: bool | str | None, run_dir: str | Path) -> ResumePoint | None:
    """Load the checkpoint ``resume`` points at (see :func:`resolve_resume`), or None for a fresh run.

    A file that is not a run's checkpoint (an agent's ``DualAgent.save``, a cache) is refused by name.
    """
    path = resolve_resume(resume, run_dir)
    if path is None:
        return None
    state = load_checkpoint(path)
    missing = [k for k in RUN_ENTRIES if not isinstance(state, dict) or k not in state]
    if missing or not isinstance(state["config"], dict):
        lacks = ", ".join(missing) or "config"
        raise CheckpointError(
            f"resume={resume!r}: {path} is not a runner's checkpoint (it has no {lacks}); resume takes a "
            "run's checkpoints/latest.pt or best_level<k>.pt, or the run's folder."
        )
    return ResumePoint(path, state)
