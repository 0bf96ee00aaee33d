"""warmup_cosine: warm-up, cosine to the floor, then the floor, per parameter group; state round-trips."""

import io

import pytest
import torch

from agents.training.schedules import warmup_cosine


def test_warmup_then_cosine_then_floor_for_every_group():
    weight, bias = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [weight]}, {"params": [bias], "lr": 0.1}], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=3, total_steps=7, min_lr_ratio=0.1)
    rates = []
    for _ in range(10):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    first = [r[0] for r in rates]
    assert first[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert first[4] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + 0.5**0.5))
    assert first[7:] == pytest.approx([0.1, 0.1, 0.1])
    assert [r[1] for r in rates] == pytest.approx([0.1 * f for f in first])

    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    again = warmup_cosine(optimizer, warmup_steps=3, total_steps=7, min_lr_ratio=0.1)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    assert again.last_epoch == scheduler.last_epoch


def test_bad_schedules_are_named():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="total_steps"):
        warmup_cosine(optimizer, warmup_steps=10, total_steps=10)
    with pytest.raises(ValueError, match="min_lr_ratio"):
        warmup_cosine(optimizer, warmup_steps=0, total_steps=10, min_lr_ratio=2.0)
