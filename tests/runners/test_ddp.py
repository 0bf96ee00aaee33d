"""DDP with two CPU processes on gloo: gradients are averaged, only rank 0 writes the run's record."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from agents.engine import inverse_softplus
from runners.ddp import DistInfo, setup_distributed
from tests.runners.ddp_worker import ddp_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_train_one_agent_and_only_rank0_writes(tmp_path):
    run_dir = tmp_path / "run"
    mp.spawn(ddp_worker, args=(2, free_port(), str(run_dir)), nprocs=2, join=True)

    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert (rank0["rank"], rank1["rank"]) == (0, 1)
    for part in ("backbone", "engine"):
        for name, tensor in rank0[part].items():
            torch.testing.assert_close(rank1[part][name], tensor, msg=f"{part}.{name} differs across ranks")
    initial = torch.tensor(inverse_softplus(1.0 - 0.05))  # engine.temperature 1, min_temperature 0.05
    assert not torch.allclose(rank0["engine"]["raw_temperature"], initial)  # RL steps moved the engine
    assert (run_dir / "checkpoints" / "latest.pt").is_file()
    assert (run_dir / "report.json").is_file()
    assert len(list((run_dir / "tb").iterdir())) == 1  # one events file: rank 1 logged nothing


def test_ddp_outside_torchrun_says_how_to_launch(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        setup_distributed(True, "cpu")


def test_single_process_needs_no_process_group():
    info = setup_distributed(False, "cpu")
    assert info == DistInfo(device=torch.device("cpu")) and info.is_main and not info.distributed
