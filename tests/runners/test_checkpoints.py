"""Checkpoint manager: latest and best-per-level files, scores that survive a restart, resume paths."""

from __future__ import annotations

import pytest
import torch

from foundation.checkpoint import CheckpointError, load_checkpoint
from runners.checkpoints import CheckpointManager, resolve_resume


def test_best_per_level_keeps_only_improvements_and_survives_a_restart(tmp_path):
    manager = CheckpointManager(tmp_path)
    assert manager.update_best(0, 0.5, {"w": torch.ones(2)})
    assert not manager.update_best(0, 0.4, {"w": torch.zeros(2)})
    assert manager.update_best(1, 0.1, {"w": torch.full((2,), 3.0)})
    assert load_checkpoint(tmp_path / "best_level0.pt")["w"].tolist() == [1.0, 1.0]

    restarted = CheckpointManager(tmp_path)
    assert restarted.best_scores() == {0: 0.5, 1: 0.1}
    assert not restarted.update_best(0, 0.5, {"w": torch.zeros(2)})


def test_disabled_manager_writes_nothing(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", enabled=False)
    assert manager.save_latest({"step": 1}) is None
    assert not manager.update_best(0, 1.0, {"step": 1})
    assert not (tmp_path / "ckpt").exists()


def test_resume_accepts_true_a_run_folder_or_a_file(tmp_path):
    CheckpointManager(tmp_path / "run" / "checkpoints").save_latest({"step": 3})
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert resolve_resume(False, tmp_path) is None
    assert resolve_resume(True, tmp_path / "run") == latest
    assert resolve_resume(str(tmp_path / "run"), tmp_path / "elsewhere") == latest
    assert resolve_resume(str(latest), tmp_path / "elsewhere") == latest


@pytest.mark.parametrize("resume", [True, "missing.pt", "."])
def test_resume_without_a_checkpoint_says_what_to_pass(tmp_path, monkeypatch, resume):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="resume"):
        resolve_resume(resume, tmp_path)


def test_a_truncated_latest_is_reported_not_loaded(tmp_path):
    manager = CheckpointManager(tmp_path / "checkpoints")
    manager.save_latest({"step": torch.tensor(1)})
    manager.latest_path.write_bytes(manager.latest_path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(resolve_resume(True, tmp_path))
