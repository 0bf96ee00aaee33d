"""Parameter parity lands within 10% of the target keeping depth; ACT weights are a proper mixture."""

import pytest
import torch

from agents.backbones import build_backbone
from agents.backbones.halting import act_combine
from agents.backbones.parity import count_parameters, match_parameters
from tests.backbones.helpers import tiny


@pytest.mark.parametrize("memory", [None, "hebbian", "external", "titans"])
def test_parity_keeps_depth_and_lands_within_ten_percent(memory):
    target = count_parameters(tiny(d_model=96, vocab_size=64))
    cfg = match_parameters(tiny(memory=memory, n_layers=3, vocab_size=64), target)
    got = count_parameters(cfg)
    assert abs(got - target) <= 0.10 * target
    assert cfg.n_layers == 3 and cfg.d_model % cfg.n_heads == 0
    assert got == build_backbone(cfg).num_parameters()


def test_parity_refuses_an_unreachable_target():
    with pytest.raises(ValueError, match="within 10%"):
        match_parameters(tiny(vocab_size=10_000), 1_000)


def test_act_halting_weights_sum_to_one_and_ponder_counts_steps():
    hiddens = [torch.full((1, 3, 2), float(i)) for i in range(3)]
    probs = [
        torch.tensor([[0.995, 0.5, 0.1]]),
        torch.tensor([[0.9, 0.6, 0.1]]),
        torch.tensor([[0.9, 0.9, 0.1]]),
    ]
    result = act_combine(hiddens, probs, threshold=0.99)
    # token 0 halts at step 1 with weight 1; token 1: 0.5 then remainder 0.5; token 2 runs out of steps.
    torch.testing.assert_close(result.steps, torch.tensor([[1.0, 2.0, 3.0]]))
    torch.testing.assert_close(result.hidden[0, :, 0], torch.tensor([0.0, 0.5, 0.1 * 1 + 0.8 * 2]))
    torch.testing.assert_close(result.ponder_cost, torch.tensor([[2.0, 2.5, 3.8]]))


def test_act_backbone_reports_halting_metrics_and_ponder_loss():
    model = build_backbone(tiny(recursion=3, act=True, ponder_weight=0.5))
    out = model(torch.randint(0, 10, (2, 7)))
    metrics = model.metrics()
    assert 1.0 <= metrics["act/steps_mean"] <= metrics["act/steps_max"] <= 3.0
    assert out.aux_loss is not None and out.aux_loss.item() == pytest.approx(0.5 * metrics["act/ponder_cost"])
