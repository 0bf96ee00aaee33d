"""The cognate presets train with gradient checkpointing on the CPU (issue 25: 12.3 GiB of host memory for
batch 32 without it), and checkpointing changes how much is kept for the backward, not what is learnt."""

from __future__ import annotations

import pytest
import torch

from runners import generation
from runners.ddp import DistInfo
from tests.runners.helpers import compose_config

COGNATE = ["cognate", "cognate_memory", "cognate_reasoning", "cognate_speed"]


@pytest.mark.parametrize("preset", COGNATE)
def test_the_cognate_presets_checkpoint_on_the_cpu_and_not_under_hardware_gpu(preset):
    assert compose_config("generation", [f"preset={preset}"], tiny=False).backbone.gradient_checkpointing
    on_gpu = compose_config("generation", [f"preset={preset}", "hardware=gpu"], tiny=False)
    assert on_gpu.backbone.gradient_checkpointing is False
    line = [f"preset={preset}", "backbone.gradient_checkpointing=false"]
    off = compose_config("generation", line, tiny=False)
    assert off.backbone.gradient_checkpointing is False


def _train(checkpointing: bool, steps: int = 3) -> tuple[list[float], dict[str, torch.Tensor]]:
    """A tiny cognate (recursion 3 x 2, Titans memory, ACT, MuGrokfast) trained ``steps`` steps on the CPU:
    its losses and final weights."""
    overrides = ["preset=cognate", "backbone.n_layers=2", "engine.interleave.rl_steps=0"]
    overrides.append(f"backbone.gradient_checkpointing={checkpointing}")
    cfg = compose_config("generation", overrides)
    torch.manual_seed(0)
    experiment = generation.build_experiment(cfg, DistInfo(device=torch.device("cpu")))
    assert experiment.agent.backbone.cfg.gradient_checkpointing is checkpointing
    losses = []
    for step in range(steps):
        metrics = experiment.train_step(step).metrics
        losses.append(float(metrics["loss"]))
        experiment.curriculum.advance(1)
    return losses, {name: p.detach().clone() for name, p in experiment.agent.backbone.named_parameters()}


def test_checkpointing_leaves_the_losses_and_the_trained_weights_unchanged():
    losses, weights = _train(False)
    losses_checkpointed, weights_checkpointed = _train(True)
    assert losses_checkpointed == pytest.approx(losses, rel=1e-5)
    torch.testing.assert_close(weights_checkpointed, weights)
    assert any(not torch.equal(w, v) for w, v in zip(weights.values(), _train(False, steps=1)[1].values()))


def test_a_resumed_cognate_run_may_switch_checkpointing():
    from omegaconf import OmegaConf

    from runners.config import option_keys, resume_config

    saved = OmegaConf.to_container(compose_config("generation", ["preset=cognate"], tiny=False), resolve=True)
    assert saved["backbone"]["gradient_checkpointing"] is True
    line = ["preset=cognate", "resume=true", "hardware.device=cuda", "backbone.gradient_checkpointing=false"]
    current = compose_config("generation", line, tiny=False)
    default = compose_config("generation", tiny=False)
    resumed = resume_config(saved, current, default, "generation", option_keys(line))
    assert resumed.backbone.gradient_checkpointing is False and resumed.hardware.device == "cuda"


def test_bench_act_speed_builds_the_variants_without_the_hardware_interpolation():
    import argparse

    from bench.act_speed import variant_config

    sizes = argparse.Namespace(seq_len=64, d_model=None, n_layers=None, n_heads=None)
    for preset in COGNATE:
        assert variant_config(preset, sizes).gradient_checkpointing is False  # not the string "${...}"
