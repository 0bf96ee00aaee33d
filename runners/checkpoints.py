"""A run's checkpoints: ``latest.pt`` (to resume) and ``best_level<k>.pt`` (best eval score per level).

Files are written atomically by :func:`foundation.checkpoint.save_checkpoint`, so a crash or Ctrl-C
mid-write leaves the previous file intact, and read with ``weights_only=True``. ``best.json`` records the
score behind each best file so a resumed run keeps improving on it rather than overwriting it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

LATEST = "latest.pt"


def best_name(level: int) -> str:
    return f"best_level{int(level)}.pt"


class CheckpointManager:
    """Keeps ``latest.pt`` and the best checkpoint per curriculum level in ``directory``.

    ``enabled=False`` (non-main DDP ranks) turns every write into a no-op; reads still work.
    """

    def __init__(self, directory: str | Path, enabled: bool = True):
        self.directory = Path(directory)
        self.enabled = enabled
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
        return save_checkpoint(state, self.latest_path)

    def update_best(self, level: int, score: float, state: dict[str, Any]) -> bool:
        """Save ``state`` as the best of ``level`` when ``score`` beats the previous best; True if saved."""
        level = int(level)
        if not self.enabled or score <= self._best.get(level, float("-inf")):
            return False
        save_checkpoint(state, self.directory / best_name(level))
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
                "indices to scores, e.g. {\"0\": 0.5}. Delete it to start the best checkpoints afresh."
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


def load_resume_state(resume: bool | str | None, run_dir: str | Path) -> dict[str, Any] | None:
    """Load the checkpoint ``resume`` points at (see :func:`resolve_resume`), or None for a fresh run."""
    path = resolve_resume(resume, run_dir)
    return None if path is None else load_checkpoint(path)
