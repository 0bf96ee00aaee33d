"""Checkpoint files: written atomically, read with ``weights_only=True`` so a foreign file runs no code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (state_dicts of models,
optimisers, schedulers and curricula, RNG states from ``foundation.rng_state()``, step counters).

Guarantees:

- **Atomic**: the state is written to a temporary file beside the target, flushed, fsynced and renamed
  over it, so a crash or kill mid-save leaves the previous file intact. A temporary file that a killed
  save left behind is removed by the next save of the same file.
- **Checksummed**: the saved dict carries a SHA-256 of its payload (every key, value and tensor byte)
  under ``CHECKSUM_KEY``; ``load_checkpoint`` recomputes it and refuses a file whose payload changed
  (a flipped byte, a partial copy). Files written before checksums existed load with a warning.
- **No code**: files are read with ``torch.load(weights_only=True)``; anything but plain data is refused.
- **Compatible or named**: :func:`check_state_matches` compares a saved state dict with a live model's or
  optimiser's and names every missing or unexpected key and every changed shape, before
  ``load_state_dict`` would fail inside torch.
"""

from __future__ import annotations

import glob
import hashlib
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

CHECKSUM_KEY = "__checksum__"
CHECKSUM_ALGORITHM = "sha256"
STALE_TMP_SECONDS = 3600.0  # a temporary file of another host or live process is stale after an hour
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()
_SHOWN = 8  # mismatches listed by name in one error


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or holds objects that are not plain data."""


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint without a checksum (written before checksums existed) was loaded unverified."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` with its checksum to ``path`` atomically: a crash mid-write leaves the previous
    file intact. Temporary files of earlier, killed saves of ``path`` are removed first."""
    if not isinstance(state, Mapping):
        raise TypeError(f"A checkpoint is a dict of state, got {type(state).__name__}.")
    if CHECKSUM_KEY in state:
        raise ValueError(f"{CHECKSUM_KEY!r} is reserved for the checkpoint's checksum; rename that entry.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    record = {"algorithm": CHECKSUM_ALGORITHM, "digest": payload_digest(state)}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            # the checksum goes first: a damaged file that stops early cannot end before it
            torch.save({CHECKSUM_KEY: record, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | Path, map_location: str | torch.device | None = "cpu", require_checksum: bool = False
) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and verify its checksum; a bad file raises
    CheckpointError naming it. The returned dict is the one that was saved (without the checksum).

    A file without a checksum (written before checkpoints carried one) loads with an
    UnverifiedCheckpointWarning, or raises CheckpointError with ``require_checksum=True`` (for caches
    that are cheaper to rebuild than to trust).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}; pass the path of a .pt file written by MindGym.")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"Checkpoint {path} is empty (0 bytes): it was never written completely. "
            "Resume from another checkpoint or start a fresh run."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # any failure to unpickle is a bad file, whatever layer noticed it
        detail = (str(err).strip().splitlines() or ["no message"])[0][:200]
        raise CheckpointError(
            f"Cannot read checkpoint {path}: it is truncated, corrupt or holds objects other than tensors "
            f"and plain data ({type(err).__name__}: {detail}). "
            "Resume from another checkpoint or start a fresh run."
        ) from err
    if not isinstance(state, dict):
        raise CheckpointError(f"Checkpoint {path} holds a {type(state).__name__}, not a dict of state.")
    if not state:
        raise CheckpointError(f"Checkpoint {path} holds an empty dict: no state to resume from.")
    record = state.pop(CHECKSUM_KEY, None)
    if record is None and require_checksum:
        raise CheckpointError(f"Checkpoint {path} has no checksum, and this reader requires one.")
    if record is None:
        damaged = [key for key, value in state.items() if _looks_like_checksum(key, value)]
        if damaged:  # a flipped byte in the entry's name must not pass the file off as an old one
            raise CheckpointError(
                f"Checkpoint {path} has a damaged checksum entry ({damaged[0]!r} instead of "
                f"{CHECKSUM_KEY!r}): the file changed after it was written. Resume from another "
                "checkpoint or start a fresh run."
            )
    if record is None:
        warnings.warn(
            f"Checkpoint {path} has no checksum (it was written before checkpoints carried one), so it "
            "is loaded unverified; save it again to add one.",
            UnverifiedCheckpointWarning,
            stacklevel=2,
        )
        return state
    if (
        not isinstance(record, dict)
        or record.get("algorithm") != CHECKSUM_ALGORITHM
        or not isinstance(record.get("digest"), str)
    ):
        raise CheckpointError(
            f"Checkpoint {path} has a malformed checksum entry {record!r}; it was not written by "
            "save_checkpoint. Resume from another checkpoint or start a fresh run."
        )
    if payload_digest(state) != record["digest"]:
        raise CheckpointError(
            f"Checkpoint {path} fails its {CHECKSUM_ALGORITHM} checksum: its contents changed after it "
            "was written (a flipped byte on disk, a partial copy or an edit). Resume from another "
            "checkpoint (e.g. a best_level*.pt) or start a fresh run."
        )
    return state


def _looks_like_checksum(key: Any, value: Any) -> bool:
    """Whether a top-level entry is the checksum entry with a byte or two changed (in name or fields)."""
    near_name = isinstance(key, str) and len(key) == len(CHECKSUM_KEY)
    if near_name and sum(a != b for a, b in zip(key, CHECKSUM_KEY)) <= 2:
        return True
    return (
        isinstance(value, Mapping)
        and len(value) == 2
        and any(isinstance(item, str) and len(item) == 64 for item in value.values())
    )


def payload_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's payload: every key and value, every tensor's dtype, shape and bytes.

    Computed the same way before saving and after loading, so equal payloads give equal digests.
    """
    digest = hashlib.new(CHECKSUM_ALGORITHM)
    _feed(digest, state)
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Add ``value`` to ``digest`` with a type tag, so different structures cannot hash alike."""
    kind = type(value).__name__
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        tensor = tensor.cpu().resolve_conj().resolve_neg().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"M{kind}{len(value)};".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, list | tuple):
        digest.update(f"L{kind}{len(value)};".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        digest.update(f"S{len(data)};".encode())
        digest.update(data)
    elif isinstance(value, bytes | bytearray):
        digest.update(f"B{len(value)};".encode())
        digest.update(value)
    else:  # numbers, None, torch.dtype, torch.device: their repr is exact and stable
        text = repr(value).encode()
        digest.update(f"V{kind}{len(text)};".encode())
        digest.update(text)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the ``.<name>.*.tmp`` files that killed saves of ``path`` left beside it; return them.

    A temporary file whose writer (named in the file name) is a dead process on this host is removed at
    once; one of another host, of a live process or from before writers were named, after an hour.
    """
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        parts = tmp.name[len(path.name) + 2 : -len(".tmp")].split(".")
        if len(parts) == 1:  # "<random>": written before writers were named
            stale = True
        elif len(parts) == 2 and "-" in parts[0]:  # "<host>-<pid>.<random>"
            host, _, pid = parts[0].partition("-")
            stale = host == _HOST and pid.isdigit() and not _process_alive(int(pid))
        else:  # the temporary file of another checkpoint whose name starts like this one's
            continue
        try:
            stale = stale or time.time() - tmp.stat().st_mtime > STALE_TMP_SECONDS
        except FileNotFoundError:
            continue
        if stale:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else (or cannot tell): keep its file
    return True


def state_mismatches(saved: Any, current: Any) -> list[str]:
    """Differences between a saved state dict and a live one, each naming its key (empty when they match).

    ``current`` is a state dict or an object with ``state_dict()`` (a model, an optimiser). Model-style
    dicts are compared key by key (missing, unexpected, changed shape, tensor vs value), nested dicts with
    dotted keys; optimiser state dicts by parameter groups (count, parameters per group, options).
    """
    if hasattr(current, "state_dict") and not isinstance(current, Mapping):
        current = current.state_dict()
    for label, value in (("saved", saved), ("current", current)):
        if not isinstance(value, Mapping):
            return [f"the {label} state is a {type(value).__name__}, not a state dict"]
    if "param_groups" in saved or "param_groups" in current:
        return _optimizer_mismatches(saved, current)
    return _dict_mismatches(saved, current, "")


def check_state_matches(what: str, saved: Any, current: Any) -> None:
    """Raise CheckpointError naming every mismatch between the checkpoint's ``saved`` state of ``what``
    (e.g. "model", "optimizer") and ``current`` (the live object or its state dict).

    Call it before ``load_state_dict``, so a resume with another model shape or optimiser says which
    keys and shapes differ instead of failing inside torch.
    """
    problems = state_mismatches(saved, current)
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise CheckpointError(
            f"The checkpoint's {what} state does not match this run's {what}: {shown}{more}. Resume with "
            f"the configuration the checkpoint was written with, or start a fresh run."
        )


def _dict_mismatches(saved: Mapping, current: Mapping, prefix: str) -> list[str]:
    problems = []
    missing = [k for k in current if k not in saved]
    unexpected = [k for k in saved if k not in current]
    if missing:
        problems.append(f"missing from the checkpoint: {_names(missing, prefix)}")
    if unexpected:
        problems.append(f"not in this run: {_names(unexpected, prefix)}")
    for key in current:
        if key not in saved:
            continue
        old, new, name = saved[key], current[key], f"{prefix}{key}"
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            problems += _dict_mismatches(old, new, f"{name}.")
        elif isinstance(old, torch.Tensor) != isinstance(new, torch.Tensor):
            problems.append(
                f"{name} is a {type(old).__name__} in the checkpoint, a {type(new).__name__} here"
            )
        elif isinstance(old, torch.Tensor) and old.shape != new.shape:
            problems.append(f"{name} has shape {tuple(old.shape)} in the checkpoint, {tuple(new.shape)} here")
    return problems


def _optimizer_mismatches(saved: Mapping, current: Mapping) -> list[str]:
    old_groups, new_groups = saved.get("param_groups"), current.get("param_groups")
    if not isinstance(old_groups, list) or not isinstance(new_groups, list):
        side = "checkpoint" if not isinstance(old_groups, list) else "live"
        return [f"the {side} state is not an optimiser state dict (no list of param_groups)"]
    if len(old_groups) != len(new_groups):
        return [f"{len(old_groups)} parameter group(s) in the checkpoint, {len(new_groups)} here"]
    problems = []
    for i, (old, new) in enumerate(zip(old_groups, new_groups)):
        old_params, new_params = len(old.get("params", [])), len(new.get("params", []))
        if old_params != new_params:
            problems.append(
                f"param_groups[{i}] holds {old_params} parameter(s) in the checkpoint, {new_params} here"
            )
        old_options, new_options = set(old) - {"params"}, set(new) - {"params"}
        if old_options != new_options:
            problems.append(
                f"param_groups[{i}] options differ (another optimiser?): only in the checkpoint "
                f"{sorted(old_options - new_options)}, only here {sorted(new_options - old_options)}"
            )
    old_state, new_state = saved.get("state", {}), current.get("state", {})
    for param in sorted(set(old_state) & set(new_state), key=repr):
        if isinstance(old_state[param], Mapping) and isinstance(new_state[param], Mapping):
            problems += _dict_mismatches(old_state[param], new_state[param], f"state[{param}].")
    return problems


def _names(keys: list[Any], prefix: str) -> str:
    names = [f"{prefix}{key}" for key in keys]
    return ", ".join(names[:_SHOWN]) + (f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")
