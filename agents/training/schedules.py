"""Learning-rate schedules: linear warm-up then cosine decay, built from torch's own schedulers.

Chaining torch's ``LinearLR``, ``CosineAnnealingLR`` and ``ConstantLR`` with ``SequentialLR`` keeps the
scheduler's state a plain dict (it round-trips through ``torch.load(weights_only=True)``) and its
behaviour the documented one.
"""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

_FOREVER = 2**62


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.1,
) -> LRScheduler:
    """Ramp the learning rate linearly over ``warmup_steps``, then cosine-decay it to ``min_lr_ratio`` x lr.

    ``total_steps`` counts warm-up; past it the rate stays at the floor. Call ``scheduler.step()`` once per
    optimiser step.
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
    base_lr = optimizer.param_groups[0]["lr"]
    cosine = CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=min_lr_ratio * base_lr)
    floor = ConstantLR(optimizer, factor=min_lr_ratio, total_iters=_FOREVER)
    if warmup_steps == 0:
        return SequentialLR(optimizer, [cosine, floor], milestones=[total_steps])
    warmup = LinearLR(optimizer, start_factor=1.0 / (warmup_steps + 1), total_iters=warmup_steps)
    return SequentialLR(optimizer, [warmup, cosine, floor], milestones=[warmup_steps, total_steps])
