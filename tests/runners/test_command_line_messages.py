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


def stderr_of_a_refused_run(runner: str, override: str, run_dir) -> str:
    """Run ``python -m <runner> <override>``, check it exits 1 without a traceback, return its stderr."""
    command = [sys.executable, "-m", runner, override, f"hydra.run.dir={run_dir}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    return done.stderr


@no_cuda
def test_the_readme_gpu_line_without_cuda_exits_with_the_fix_and_no_traceback(tmp_path):
    stderr = stderr_of_a_refused_run("runners.maze", "hardware=gpu", tmp_path)
    assert "hardware=cpu" in stderr and "hardware.device=auto" in stderr


@no_cuda
def test_ppo_names_hardware_device_cpu_since_it_has_no_hardware_group():
    from runners.ppo import ppo_device

    with pytest.raises(ConfigError) as caught:
        ppo_device("cuda")
    message = str(caught.value)
    assert "hardware.device=cpu" in message and "hardware.device=auto" in message
    assert "hardware=cpu" not in message and "device='auto'" not in message


def test_ppo_names_the_overrides_for_an_unknown_device():
    from runners.ppo import ppo_device

    with pytest.raises(ConfigError, match=r"hardware\.device=tpu: .* hardware\.device=cpu"):
        ppo_device("tpu")


@no_cuda
def test_ppo_on_a_missing_gpu_exits_with_the_fix_and_no_traceback(tmp_path):
    stderr = stderr_of_a_refused_run("runners.ppo", "hardware.device=cuda", tmp_path)
    assert "hardware.device=cpu" in stderr and "hardware.device=auto" in stderr


def test_a_misspelt_curriculum_setting_names_the_override_and_its_fix():
    from omegaconf import OmegaConf

    from runners.config import build_curriculum_schedule

    curriculum = OmegaConf.create({"name": "adaptive", "params": {"treshold": 0.5, "window": 8}})
    with pytest.raises(ConfigError) as caught:
        build_curriculum_schedule(curriculum, 3)
    message = str(caught.value)
    assert message.startswith("curriculum.params.treshold:")
    assert "did you mean curriculum.params.threshold" in message and "Unknown argument" not in message


def test_an_unknown_curriculum_name_lists_the_names_as_overrides():
    from omegaconf import OmegaConf

    from runners.config import build_curriculum_schedule

    with pytest.raises(ConfigError, match=r"curriculum\.name=adaptiv .* curriculum\.name=adaptive"):
        build_curriculum_schedule(OmegaConf.create({"name": "adaptiv", "params": {}}), 3)


def test_the_schedule_factory_keeps_python_names_outside_a_runner():
    from curricula import build_schedule

    with pytest.raises(ValueError) as caught:
        build_schedule("adaptive", 3, treshold=0.5)
    message = str(caught.value)
    assert "Unknown argument(s) ['treshold']" in message and "did you mean threshold" in message
    assert "curriculum.params" not in message


def test_a_runner_with_a_misspelt_curriculum_setting_exits_with_the_override_and_no_traceback(tmp_path):
    command = [
        sys.executable, "-m", "runners.recall", "+curriculum.params.treshold=0.5", f"hydra.run.dir={tmp_path}"
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "curriculum.params.treshold" in done.stderr and "curriculum.params.threshold" in done.stderr
    assert "Traceback" not in done.stderr
