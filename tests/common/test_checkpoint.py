"""Checkpoints are atomic and load only plain data."""

import pytest
import torch

from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_roundtrip_and_overwrite(tmp_path):
    path = tmp_path / "ckpt" / "latest.pt"
    save_checkpoint({"step": 1, "w": torch.ones(2)}, path)
    save_checkpoint({"step": 2, "w": torch.zeros(2)}, path)
    state = load_checkpoint(path)
    assert state["step"] == 2 and torch.equal(state["w"], torch.zeros(2))
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]


def test_truncated_and_missing_files_fail_clearly(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"w": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_file_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": _Payload()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "latest.pt"
    save_checkpoint({"step": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 — any pickling failure
        save_checkpoint({"step": 2, "bad": lambda: 0}, path)
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]
