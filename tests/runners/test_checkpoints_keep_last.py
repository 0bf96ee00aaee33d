"""trainer.keep_last: numbered checkpoints kept N deep, latest/best untouched; sizes reported; no
duplicate data when two checkpoints are written at the same step."""

from __future__ import annotations

import json
import os

import pytest
import torch

from foundation.checkpoint import load_checkpoint
from runners import recall
from runners.app import execute
from runners.checkpoints import CheckpointManager
from tests.runners.helpers import compose_config


def state(step: int) -> dict:
    return {"step": step, "experiment": {"agent": {"backbone": {"w": torch.full((256,), float(step))}}}}


def test_keep_last_keeps_the_newest_numbered_copies_and_each_holds_its_step(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (1, 2, 3, 4):
        manager.save_latest(state(step))
    assert [p.name for p in manager.numbered()] == ["step00000003.pt", "step00000004.pt"]
    assert load_checkpoint(tmp_path / "step00000003.pt")["step"] == 3  # kept its data when latest moved on
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 4
    assert manager.update_best(0, 0.5, state(4))
    manager.save_latest(state(5))
    assert load_checkpoint(tmp_path / "best_level0.pt")["step"] == 4  # best untouched by the pruning
    assert [p.name for p in manager.numbered()] == ["step00000004.pt", "step00000005.pt"]


def test_without_keep_last_no_numbered_copies_are_written(tmp_path):
    manager = CheckpointManager(tmp_path)
    for step in (1, 2):
        manager.save_latest(state(step))
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["latest.pt"]


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_a_bad_keep_last_names_the_override(tmp_path, bad):
    with pytest.raises(ValueError, match=r"trainer\.keep_last=3"):
        CheckpointManager(tmp_path, keep_last=bad)


def test_a_best_and_a_latest_of_the_same_step_share_their_data_on_disk(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.update_best(0, 0.9, state(10))
    manager.save_latest(state(10))
    assert os.path.samefile(tmp_path / "best_level0.pt", tmp_path / "latest.pt")
    sizes = manager.sizes()
    one = (tmp_path / "latest.pt").stat().st_size
    assert sizes["files"] == {"best_level0.pt": one, "latest.pt": one} and sizes["disk_bytes"] == one
    assert sizes["parts"] == {"agent/backbone": 256 * 4}

    manager.save_latest(state(11))  # a new latest replaces the link; the best keeps step 10
    assert load_checkpoint(tmp_path / "best_level0.pt")["step"] == 10
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 11
    assert manager.sizes()["disk_bytes"] > one


def test_a_run_with_keep_last_reports_its_checkpoint_sizes(tmp_path, capsys):
    overrides = ["trainer.steps=6", "trainer.keep_last=2"]
    execute(compose_config("recall", overrides), "recall", recall.build_experiment, run_dir=tmp_path)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.glob("step*.pt")) == ["step00000004.pt", "step00000006.pt"]
    assert load_checkpoint(folder / "step00000004.pt")["step"] == 4
    sizes = json.loads((tmp_path / "report.json").read_text())["checkpoint_sizes"]
    assert sizes["keep_last"] == 2 and set(sizes["files"]) >= {"latest.pt", "step00000006.pt"}
    assert sizes["disk_bytes"] < sum(sizes["files"].values())  # the step-6 copies are one file
    out = capsys.readouterr().out
    assert "Checkpoint " in out and "agent/backbone" in out and "Checkpoint files: best_level0.pt" in out
