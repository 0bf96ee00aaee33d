"""Parameter parity: resize a backbone's width to a parameter budget while keeping its depth.

Comparisons between backbones are only fair at equal size. The seed project found that keeping depth and
shrinking width is the variant that preserves what a memory adds, so ``match_parameters`` changes only
d_model (a multiple of 2 * n_heads, so heads still divide it and rotary pairs stay whole). Counting builds
the model on the meta device, which allocates no memory.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from agents.backbones.config import BackboneConfig


def count_parameters(cfg: BackboneConfig) -> int:
    """Trainable parameters of the backbone ``cfg`` describes (tied weights counted once)."""
    from agents.backbones import build_backbone

    with torch.device("meta"):
        model = build_backbone(cfg)
    return sum(p.numel() for p in model.parameters())


def match_parameters(
    cfg: BackboneConfig, target: int, tolerance: float = 0.10, head_multiple: int = 2
) -> BackboneConfig:
    """A copy of ``cfg`` whose d_model brings the parameter count closest to ``target``; depth, heads and
    every other field stay. The head width stays a multiple of ``head_multiple`` (2 for rotary; 8 keeps
    GPU attention kernels on their fast path). Raises ValueError when no width lands within ``tolerance``."""
    if target <= 0:
        raise ValueError(f"target parameter count must be positive, got {target}.")
    if head_multiple < 2 or head_multiple % 2:
        raise ValueError(f"head_multiple must be an even int >= 2 (rotary pairs), got {head_multiple}.")
    step = head_multiple * cfg.n_heads
    if cfg.memory_heads:
        step = math.lcm(step, cfg.memory_heads)

    def sized(width: int) -> BackboneConfig:
        return dataclasses.replace(cfg, d_model=width)

    lo, hi = 1, 2
    while count_parameters(sized(hi * step)) < target:  # parameters grow with width: bracket, then bisect
        lo, hi = hi, hi * 2
        if hi * step > 1 << 16:
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_parameters(sized(mid * step)) < target:
            lo = mid
        else:
            hi = mid
    best = min((sized(m * step) for m in (lo, hi)), key=lambda c: abs(count_parameters(c) - target))
    got = count_parameters(best)
    if abs(got - target) > tolerance * target:
        raise ValueError(
            f"No width for n_layers={cfg.n_layers}, n_heads={cfg.n_heads} reaches {target:,} parameters "
            f"within {tolerance:.0%} (closest: d_model={best.d_model} with {got:,}); "
            "change n_layers or n_heads, or vocab_size, which dominates small models."
        )
    return best
