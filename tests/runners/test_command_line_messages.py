"""Errors a runner raises name the override to type on the command line, not a Python keyword argument."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from runners.config import ConfigError
from runners.ddp import command_line_device, setup_distributed

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@no_cuda
def test_a_missing_gpu_names_hardware_cpu_and_hardware_device_auto():
    with pytest.raises(ConfigError) as caught:
        setup_distributed(False, "cuda")
    message = str(caught.value)
    assert "hardware.device=cuda" in message and "hardware=cpu" in message
    assert "hardware.device=auto" in message and "device='auto'" not in message


@pytest.mark.parametrize("device", ["tpu", "cuda:x"])
def test_an_unknown_device_names_the_overrides(device):
    with pytest.raises(ConfigError, match=r"hardware\.device=auto"):
        command_line_device(device)


def test_evaluate_and_replay_name_their_own_device_option():
    with pytest.raises(ConfigError, match=r"device=tpu: .* device=cpu"):
        command_line_device("tpu", key="device")


def test_an_unknown_ddp_backend_lists_the_overrides():
    with pytest.raises(ConfigError, match=r"hardware\.backend=gloo"):
        setup_distributed(False, "cpu", backend="mpi")


def test_ddp_outside_torchrun_says_how_to_launch(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node=N"):
        setup_distributed(True, "cpu")


@no_cuda
def test_the_readme_gpu_line_without_cuda_exits_with_the_fix_and_no_traceback(tmp_path):
    command = [sys.executable, "-m", "runners.maze", "hardware=gpu", f"hydra.run.dir={tmp_path}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "hardware=cpu" in done.stderr and "hardware.device=auto" in done.stderr
    assert "Traceback" not in done.stderr
