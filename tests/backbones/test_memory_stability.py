"""The memory knobs are bounded to a range measured stable, and Titans stays finite at the bound."""

import math

import pytest
import torch

from agents.backbones import BackboneConfig, build_backbone
from agents.backbones.config import MAX_NEURAL_MEMORY_LR
from agents.backbones.titans import MAX_MOMENTUM, NeuralMemory, step_scales, update_coefficients
from tests.backbones.helpers import tiny


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("neural_memory_lr", 1.5, r"neural_memory_lr must lie in \(0, 1.0\]"),
        ("neural_memory_lr", 0.0, r"neural_memory_lr must lie in \(0, 1.0\]"),
        ("neural_memory_lr", math.nan, "neural_memory_lr"),
        ("neural_memory_lr", "0.1", "neural_memory_lr must be a number"),
        ("plasticity", 0.0, r"plasticity must lie in \(0, 1\]"),
        ("plasticity", 1.01, "plasticity"),
        ("hebbian_decay_init", -0.5, "hebbian_decay_init"),
        ("plasticity", "high", "plasticity must be a number"),
        ("norm_eps", -1e-6, "norm_eps must be a number >= 0"),
        ("rope_base", 0.0, "rope_base"),
    ],
)
def test_memory_knobs_outside_their_range_are_refused_by_name(field, value, match):
    with pytest.raises(ValueError, match=match):
        tiny(**{field: value})


def test_hebbian_plasticity_set_by_a_curriculum_is_bounded_too():
    model = build_backbone(tiny(memory="hebbian"))
    for alpha in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="plasticity"):
            model.set_plasticity(alpha)


@pytest.mark.parametrize("saturated", [False, True])
def test_titans_logits_stay_finite_at_the_learning_rate_bound_over_1k_tokens_in_fp32(saturated):
    # Before the normalised step, this model gave NaN for 45,056 of its 65,536 logits.
    torch.manual_seed(0)
    cfg = BackboneConfig(
        vocab_size=64,
        d_model=64,
        n_layers=1,
        n_heads=1,
        memory="titans",
        memory_chunk=64,
        neural_memory_lr=MAX_NEURAL_MEMORY_LR,
        max_seq_len=1024,
    )
    model = build_backbone(cfg).eval()
    if saturated:  # the worst a training run can reach: full learning rate and momentum, no forgetting
        memory = model.blocks[0].memory
        with torch.no_grad():
            memory.gates.bias.copy_(torch.tensor([20.0, 20.0, -20.0]).repeat_interleave(memory.n_heads))
    tokens = torch.randint(0, 64, (1, 1024), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(tokens).logits
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_momentum_is_capped_and_gates_below_the_cap_are_unchanged():
    lr, keep = torch.full((1, 1, 4), 0.1), torch.full((1, 1, 4), -0.01)
    saturated = update_coefficients(lr, torch.zeros(1, 1, 4), keep)  # eta = 1
    capped = update_coefficients(lr, torch.full((1, 1, 4), math.log(MAX_MOMENTUM)), keep)
    for got, want in zip(saturated, capped):
        torch.testing.assert_close(got, want)
    below = torch.full((1, 1, 4), math.log(0.9))
    assert float(update_coefficients(lr, below, keep)[4].squeeze()) == pytest.approx(0.9**4, rel=1e-5)


def test_small_steps_are_not_rescaled_and_large_ones_are_capped_at_one():
    torch.manual_seed(0)
    k = torch.nn.functional.normalize(torch.randn(1, 1, 8, 4), dim=-1)
    a, y = torch.randn(1, 1, 8, 6) * 0.1, torch.randn(1, 1, 8, 4) * 0.1
    small = step_scales(torch.full((1, 1, 8, 1), 1e-3), k, a, y)
    assert all(float(s) == 1.0 for s in small)  # the stable regime runs exactly as before
    big = torch.full((1, 1, 8, 1), 10.0)
    scale1, scale2 = step_scales(big, k, a, y)
    assert float((big * scale2 * a.square().sum(-1, keepdim=True)).sum()) == pytest.approx(1.0, rel=1e-4)
    assert float((big * scale1).sum()) <= 1.0 + 1e-4  # unit keys: the W1 bound is at most 1


def test_the_normalised_step_leaves_the_memory_differentiable():
    memory = NeuralMemory(d_model=16, n_heads=2, expansion=2, chunk=4, max_lr=MAX_NEURAL_MEMORY_LR)
    x = torch.randn(2, 12, 16, requires_grad=True)
    out = memory(x)[0]
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in memory.parameters())
