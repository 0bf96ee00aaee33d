"""Learning-rate schedules: linear warm-up, cosine decay to a floor, then the floor.

The schedule is a multiplicative factor in torch's ``LambdaLR``, so every parameter group keeps its own base
rate (the engine's conditioned head runs at a fraction of the knobs' rate). The factor is a small dataclass,
so the scheduler's ``state_dict`` is plain data and round-trips through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR


@dataclass
class WarmupCosineFactor:
    """Factor of the base rate at step ``step``: (step + 1) / (warmup + 1) during warm-up, then cosine from
    1 to ``min_ratio`` at ``total_steps``, then ``min_ratio``."""

    warmup_steps: int
    total_steps: int
    min_ratio: float

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.1,
) -> LambdaLR:
    """Ramp each group's rate linearly over ``warmup_steps``, cosine-decay it to ``min_lr_ratio`` x its base
    rate at ``total_steps`` (warm-up included), and hold it there. Call ``step()`` once per optimiser step.
    """
    if not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be a non-negative int, got {warmup_steps!r}.")
    if not isinstance(total_steps, int) or total_steps <= warmup_steps:
        raise ValueError(
            f"total_steps must be an int larger than warmup_steps ({warmup_steps}), got {total_steps!r}; "
            "it is the length of the whole schedule, warm-up included."
        )
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must lie in [0, 1], got {min_lr_ratio!r}.")
    return LambdaLR(optimizer, WarmupCosineFactor(warmup_steps, total_steps, float(min_lr_ratio)))
