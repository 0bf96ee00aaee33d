"""A run's checkpoints: ``latest.pt`` (to resume), ``best_level<k>.pt`` (best eval score per level) and,
with ``trainer.keep_last=N``, the N newest numbered ``step<k>.pt`` copies of ``latest.pt``.

Files are written atomically by :func:`foundation.checkpoint.save_checkpoint`, so a crash or Ctrl-C
mid-write leaves the previous file intact, and read with ``weights_only=True``. ``best.json`` records the
score behind each best file so a resumed run keeps improving on it rather than overwriting it.

Size: a checkpoint holds the weights and the optimiser's state (AdamW keeps two moments per weight, so
about 12 bytes per float32 parameter in all). Checkpoints written at the same step hold the same state, so
the second is a hard link to the first (a best checkpoint found at a save step, as at the end of every run,
costs no second copy on disk); numbered copies are hard links to ``latest.pt`` too, and keep their data
when ``latest.pt`` is replaced. :meth:`CheckpointManager.sizes` reports what the files take.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

LATEST = "latest.pt"
NUMBERED = re.compile(r"step(\d+)\.pt")


def best_name(level: int) -> str:
    return f"best_level{int(level)}.pt"


def numbered_name(step: int) -> str:
    """The file name of the numbered checkpoint of ``step`` (zero-padded so names sort by step)."""
    return f"step{int(step):08d}.pt"


def state_bytes(state: Any) -> int:
    """Bytes of the tensors in a nested checkpoint state; a storage several tensors share counts once."""
    seen: set[int] = set()

    def walk(value: Any) -> int:
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            if storage.data_ptr() in seen:
                return 0
            seen.add(storage.data_ptr())
            return storage.nbytes()
        if isinstance(value, dict):
            return sum(walk(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(walk(v) for v in value)
        return 0

    return walk(state)


def state_parts(state: dict[str, Any], least: float = 0.01) -> dict[str, int]:
    """Tensor bytes of a run checkpoint by entry of its ``experiment`` (``agent/backbone`` weights,
    ``agent/supervised`` optimiser, ...), the entries under ``least`` of the total summed as ``other``."""
    experiment = state.get("experiment", state)
    parts: dict[str, int] = {}
    for name, value in experiment.items() if isinstance(experiment, dict) else []:
        inner = value.items() if name == "agent" and isinstance(value, dict) else [(None, value)]
        for sub, entry in inner:
            parts[name if sub is None else f"{name}/{sub}"] = state_bytes(entry)
    total = sum(parts.values())
    shown = {k: v for k, v in parts.items() if v >= least * total and v > 0}
    other = total - sum(shown.values())
    return {**dict(sorted(shown.items(), key=lambda kv: -kv[1])), **({"other": other} if other else {})}


def megabytes(n: int | float) -> str:
    """``n`` bytes as MB with a sensible number of digits."""
    mb = n / 2**20
    return f"{mb:.0f} MB" if mb >= 100 else f"{mb:.1f} MB" if mb >= 1 else f"{mb:.2f} MB"


class CheckpointManager:
    """Keeps ``latest.pt``, the best checkpoint per curriculum level and ``keep_last`` numbered ones.

    ``enabled=False`` (non-main DDP ranks) turns every write into a no-op; reads still work. ``stamp``
    holds entries every checkpoint written here carries besides the state (the run's command-line
    overrides, so that a resume can keep the record of them). ``keep_last=N`` (``trainer.keep_last``)
    keeps a numbered ``step<k>.pt`` beside each of the N most recent saves of ``latest.pt``; 0 keeps none.
    Saves pass states whose ``step`` entry says when they were taken: two at the same step are the same.
    """

    def __init__(
        self,
        directory: str | Path,
        enabled: bool = True,
        stamp: dict[str, Any] | None = None,
        keep_last: int = 0,
    ):
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
            raise ValueError(
                f"trainer.keep_last must be an int >= 0 (numbered checkpoints kept beside latest.pt; 0: "
                f"none), got {keep_last!r}; e.g. trainer.keep_last=3"
            )
        self.directory = Path(directory)
        self.enabled = enabled
        self.stamp = dict(stamp or {})
        self.keep_last = keep_last
        self.parts: dict[str, int] = {}  # tensor bytes by entry of the last state written
        self._best: dict[int, float] = self._read_best()
        self._last: tuple[Any, Path] | None = None  # (step, file) of the last write

    @property
    def latest_path(self) -> Path:
        return self.directory / LATEST

    def best_scores(self) -> dict[int, float]:
        """The score of each level's best checkpoint so far."""
        return dict(self._best)

    def save_latest(self, state: dict[str, Any]) -> Path | None:
        """Atomically replace ``latest.pt`` with ``state``; with ``keep_last`` also keep it numbered."""
        if not self.enabled:
            return None
        path = self._write(state, self.latest_path)
        if self.keep_last and "step" in state:
            self._link_or_copy(path, self.directory / numbered_name(int(state["step"])))
            for old in self.numbered()[: -self.keep_last]:
                old.unlink(missing_ok=True)
        return path

    def update_best(self, level: int, score: float, state: dict[str, Any]) -> bool:
        """Save ``state`` as the best of ``level`` when ``score`` beats the previous best; True if saved."""
        level = int(level)
        if not self.enabled or score <= self._best.get(level, float("-inf")):
            return False
        self._write(state, self.directory / best_name(level))
        self._best[level] = float(score)
        self._write_best()
        return True

    def numbered(self) -> list[Path]:
        """The numbered ``step<k>.pt`` checkpoints in this folder, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := NUMBERED.fullmatch(p.name))]
        return [p for _, p in sorted(found)]

    def sizes(self) -> dict[str, Any]:
        """What the checkpoint files take: bytes per file, bytes on disk (hard links count once) and the
        tensor bytes of the last state written by entry (weights, optimiser, ...)."""
        files = sorted(self.directory.glob("*.pt")) if self.directory.is_dir() else []
        stats = {p.name: p.stat() for p in files}
        inodes = {(s.st_dev, s.st_ino): s.st_size for s in stats.values()}
        return {
            "files": {name: s.st_size for name, s in stats.items()},
            "disk_bytes": sum(inodes.values()),
            "parts": dict(self.parts),
            "keep_last": self.keep_last,
        }

    def _write(self, state: dict[str, Any], path: Path) -> Path:
        """Save ``state`` to ``path`` atomically, or link it to the file written last at the same step."""
        step = state.get("step")
        if step is not None and self._last is not None and self._last[0] == step and self._last[1].is_file():
            self._link_or_copy(self._last[1], path)
        else:
            save_checkpoint({**state, **self.stamp}, path)
            self.parts = state_parts(state)
        self._last = (step, path)
        return path

    @staticmethod
    def _link_or_copy(source: Path, target: Path) -> None:
        """Atomically make ``target`` hold ``source``'s bytes: a hard link, or a copy where links fail."""
        if target.exists() and os.path.samefile(source, target):
            return
        tmp = target.with_name(f".{target.name}.{os.getpid()}.link.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:  # a file system without hard links
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)

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


def latest_in_folder(folder: Path) -> Path | None:
    """A run folder's latest checkpoint (``checkpoints/latest.pt``, or ``latest.pt`` when handed the
    checkpoints folder itself), or None when it has none; what ``resume=`` and ``checkpoint=`` mean by a
    folder."""
    for candidate in (folder / "checkpoints" / LATEST, folder / LATEST):
        if candidate.is_file():
            return candidate
    return None


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
        latest = latest_in_folder(path)
        if latest is not None:
            return latest
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
