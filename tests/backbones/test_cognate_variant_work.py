"""The Cognate speed preset does less work than the reasoning preset where it halts earlier: on the same
weights and the same input, fewer block applications and fewer token rows through them, not only a
different weighting of the same passes (issue 21: "ACT never skips work")."""

import dataclasses

import torch
from omegaconf import OmegaConf

from agents.backbones import BackboneConfig, build_backbone
from bench.harness import runner_config

TINY = ["backbone.d_model=32", "backbone.n_layers=2", "backbone.n_heads=4", "backbone.memory_chunk=4"]
VOCAB, BATCH, LENGTH = 40, 2, 12


def preset_backbone(preset: str) -> torch.nn.Module:
    """The preset's backbone as ``python -m runners.generation preset=<preset>`` composes it, shrunk."""
    cfg = runner_config("generation", [f"preset={preset}", *TINY])
    fields = OmegaConf.to_object(cfg.backbone)
    assert isinstance(fields, BackboneConfig)
    torch.manual_seed(0)
    return build_backbone(dataclasses.replace(fields, vocab_size=VOCAB)).eval()


def work(model: torch.nn.Module, tokens: torch.Tensor) -> tuple[int, int, float]:
    """Block applications and token rows through the blocks' feed-forward in one forward (gather padding
    included: what really ran), and the mean ACT steps."""
    calls: list[int] = []
    hooks = [
        block.ffn.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[:-1].numel()))
        for block in model.blocks
    ]
    try:
        with torch.no_grad():
            out = model(tokens, return_state=False)
    finally:
        for hook in hooks:
            hook.remove()
    return len(calls), sum(calls), float(out.metrics["act/steps_mean"])


def speed_and_reasoning() -> tuple[torch.nn.Module, torch.nn.Module]:
    """Both presets on the speed model's weights (halting start included): only the presets' ACT
    threshold and ponder settings differ."""
    speed, reasoning = preset_backbone("cognate_speed"), preset_backbone("cognate_reasoning")
    reasoning.load_state_dict(speed.state_dict())
    assert speed.cfg.act_threshold < reasoning.cfg.act_threshold
    return speed, reasoning


def test_the_speed_preset_skips_the_last_refinement_step_the_reasoning_preset_computes():
    speed, reasoning = speed_and_reasoning()
    tokens = torch.randint(0, VOCAB, (BATCH, LENGTH))
    speed_blocks, speed_rows, speed_steps = work(speed, tokens)
    reasoning_blocks, reasoning_rows, reasoning_steps = work(reasoning, tokens)
    # Halting start 0.45 per step: 2 steps pass the speed threshold 0.8, not the reasoning one 0.99.
    assert speed_steps == 2.0 and reasoning_steps == 3.0
    layers, micro_steps = len(speed.blocks), speed.cfg.micro_steps
    assert reasoning_blocks == 3 * micro_steps * layers and speed_blocks == 2 * micro_steps * layers
    assert reasoning_rows == 3 * micro_steps * layers * BATCH * LENGTH
    assert speed_rows * 3 == reasoning_rows * 2


def test_with_halting_that_differs_per_token_the_speed_preset_computes_fewer_rows():
    speed, reasoning = speed_and_reasoning()
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(speed.halting.proj.weight.shape, generator=generator) * 2.0
    for model in (speed, reasoning):  # the same per-token halting probabilities in both
        with torch.no_grad():
            model.halting.proj.weight.copy_(weight)
            model.halting.proj.bias.fill_(0.4)
    # 128 positions: the running rows are padded to a multiple of 16 per pass, so on a few dozen positions
    # a fraction of a step less can round to the same padded width (the same work).
    tokens = torch.randint(0, VOCAB, (BATCH, 128), generator=generator)
    _, speed_rows, speed_steps = work(speed, tokens)
    _, reasoning_rows, reasoning_steps = work(reasoning, tokens)
    assert 2.0 < speed_steps < reasoning_steps < 3.0  # tokens halt at different steps in both
    dense = 3 * speed.cfg.micro_steps * len(speed.blocks) * tokens.numel()
    assert speed_rows < reasoning_rows < dense
