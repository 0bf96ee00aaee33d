"""Checkpoint integrity: checksums, empty files, stale temporary files, mismatches reported by name."""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from foundation.checkpoint import (
    _HOST,
    CHECKSUM_KEY,
    CheckpointError,
    UnverifiedCheckpointWarning,
    check_state_matches,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
    state_mismatches,
)
from runners.checkpoints import CheckpointManager


def _model(width: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 4))


def test_a_zero_byte_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "latest.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(path)


def test_a_byte_flipped_inside_the_weights_is_refused(tmp_path):
    model = _model()
    path = save_checkpoint({"model": model.state_dict(), "step": 3}, tmp_path / "latest.pt")
    blob = bytearray(path.read_bytes())
    weights = model[0].weight.detach().numpy().tobytes()
    at = bytes(blob).find(weights)
    assert at > 0  # the raw float32 bytes of the first layer
    blob[at + 17] ^= 0x04
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="fails its sha256 checksum"):
        load_checkpoint(path)


def test_the_loaded_state_is_the_saved_one_without_the_checksum(tmp_path):
    state = {"model": _model().state_dict(), "step": 7, "rng": torch.get_rng_state(), "note": ("a", 1.5)}
    path = save_checkpoint(state, tmp_path / "latest.pt")
    loaded = load_checkpoint(path)
    assert CHECKSUM_KEY not in loaded and CHECKSUM_KEY not in state and list(loaded) == list(state)
    assert all(torch.equal(loaded["model"][k], v) for k, v in state["model"].items())
    assert torch.load(path, weights_only=True)[CHECKSUM_KEY]["algorithm"] == "sha256"
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint({CHECKSUM_KEY: 1}, tmp_path / "other.pt")


def test_checkpoints_without_a_checksum_load_with_a_warning(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"step": 5, "w": torch.ones(3)}, path)
    with pytest.warns(UnverifiedCheckpointWarning, match="no checksum"):
        assert load_checkpoint(path)["step"] == 5
    with pytest.raises(CheckpointError, match="requires one"):
        load_checkpoint(path, require_checksum=True)


KILLED_SAVE = textwrap.dedent(
    """
    import os, signal, sys, torch
    from foundation.checkpoint import save_checkpoint

    def dies_mid_write(state, f):
        f.write(b"PK partial")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = dies_mid_write
    save_checkpoint({"step": 2}, sys.argv[1])
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_a_killed_save_keeps_the_last_checkpoint_and_its_temporary_file_goes_next_save(tmp_path):
    path = save_checkpoint({"step": 1}, tmp_path / "latest.pt")
    run = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(path)], capture_output=True, check=False)
    assert run.returncode == -9
    leftovers = list(tmp_path.glob(".latest.pt.*.tmp"))
    assert len(leftovers) == 1 and load_checkpoint(path)["step"] == 1
    save_checkpoint({"step": 3}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]
    assert load_checkpoint(path)["step"] == 3


def test_temporary_files_of_live_writers_and_other_checkpoints_are_kept(tmp_path):
    path = tmp_path / "latest.pt"
    live = tmp_path / f".latest.pt.{_HOST}-{os.getppid()}.abc123.tmp"  # a live process's save
    other = tmp_path / f".latest.pt.bak.{_HOST}-999999999.abc123.tmp"  # a save of "latest.pt.bak"
    legacy = tmp_path / ".latest.pt.k3j4h5.tmp"  # left by a save before writers were named
    for file in (live, other, legacy):
        file.write_bytes(b"partial")
    assert remove_stale_temporaries(path) == [legacy]
    assert live.exists() and other.exists()


def test_model_mismatches_are_reported_by_key_and_shape():
    saved = _model(16).state_dict()
    shape = r"0\.weight has shape \(16, 8\) in the checkpoint, \(32, 8\) here"
    with pytest.raises(CheckpointError, match=shape):
        check_state_matches("model", saved, _model(32))
    deeper = torch.nn.Sequential(*_model(16), torch.nn.Linear(4, 4))
    problems = state_mismatches(saved, deeper)
    assert problems == ["missing from the checkpoint: 3.weight, 3.bias"]
    assert state_mismatches(saved, _model(16)) == []
    with pytest.raises(CheckpointError, match="not a state dict"):
        check_state_matches("model", [1, 2], _model(16))


def test_optimiser_mismatches_are_reported_by_name():
    model = _model()
    adam = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 8)).sum().backward()
    adam.step()
    options = r"options differ .* only in the checkpoint \['amsgrad', 'betas'"
    with pytest.raises(CheckpointError, match=options):
        check_state_matches("optimizer", adam.state_dict(), torch.optim.SGD(model.parameters(), lr=0.1))
    split = torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters()}])
    with pytest.raises(CheckpointError, match=r"1 parameter group\(s\) in the checkpoint, 2 here"):
        check_state_matches("optimizer", adam.state_dict(), split)
    fewer = torch.optim.Adam(model[0].parameters())
    with pytest.raises(CheckpointError, match=r"holds 4 parameter\(s\) in the checkpoint, 2 here"):
        check_state_matches("optimizer", adam.state_dict(), fewer)
    check_state_matches("optimizer", adam.state_dict(), torch.optim.Adam(model.parameters()))


def test_a_corrupt_best_record_is_a_checkpoint_error(tmp_path):
    (tmp_path / "best.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"best\.json is not a record of best scores"):
        CheckpointManager(tmp_path)
    (tmp_path / "best.json").write_text(json.dumps({"0": 0.5}))
    assert CheckpointManager(tmp_path).best_scores() == {0: 0.5}


def test_a_damaged_checksum_entry_does_not_pass_the_file_off_as_an_old_one(tmp_path):
    path = save_checkpoint({"step": 1, "w": torch.ones(2)}, tmp_path / "latest.pt")
    blob = path.read_bytes()
    at = blob.find(CHECKSUM_KEY.encode())
    path.write_bytes(blob[: at + 4] + bytes([blob[at + 4] ^ 0x20]) + blob[at + 5 :])  # "__cHecksum__"
    with pytest.raises(CheckpointError, match="damaged checksum entry"):
        load_checkpoint(path)
    torch.save({}, path)
    with pytest.raises(CheckpointError, match="empty dict"):
        load_checkpoint(path)


@pytest.mark.slow
def test_every_single_bit_flip_is_refused_or_leaves_the_payload_exact(tmp_path):
    path = save_checkpoint({"model": {"w": torch.arange(3.0)}, "step": 1}, tmp_path / "latest.pt")
    blob, damaged = path.read_bytes(), tmp_path / "damaged.pt"
    for at in range(len(blob)):
        for bit in range(8):
            damaged.write_bytes(blob[:at] + bytes([blob[at] ^ (1 << bit)]) + blob[at + 1 :])
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    state = load_checkpoint(damaged)
            except CheckpointError:
                continue
            assert list(state) == ["model", "step"] and state["step"] == 1, (at, bit)
            assert torch.equal(state["model"]["w"], torch.arange(3.0)), (at, bit)
