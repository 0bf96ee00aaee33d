"""InferenceEngine: gradients reach every parameter, defaults are plain decoding, knobs do what they say."""

import pytest
import torch

from agents.engine import InferenceEngine, context_presence, decode_logits, sample_actions
from tests.agents.fixtures import make_backbone

VOCAB = 12
ACTIONS = list(range(2, 12))


def _batch(seed=0, b=6, t=10):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, VOCAB, (b, t), generator=g)
    length = torch.randint(3, t + 1, (b, 1), generator=g)
    return tokens, length


@pytest.mark.parametrize("conditioned", [False, True])
def test_every_engine_parameter_gets_finite_nonzero_gradient(conditioned):
    torch.manual_seed(0)
    backbone = make_backbone(VOCAB, n_layers=3).eval()
    engine = InferenceEngine.for_backbone(backbone, ACTIONS, conditioned=conditioned, top_p=0.8)
    tokens, length = _batch()
    dist, _ = engine(backbone, tokens, length)
    actions = sample_actions(dist, torch.Generator().manual_seed(1))
    dist.log_prob(actions).sum().backward()
    names = [name for name, _ in engine.named_parameters()]
    assert {"raw_temperature", "raw_top_p", "raw_penalty", "raw_layer_weights", "raw_head_weights"} <= set(
        names
    )
    for name, param in engine.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_defaults_are_plain_decoding():
    torch.manual_seed(0)
    backbone = make_backbone(VOCAB).eval()
    engine = InferenceEngine.for_backbone(backbone, ACTIONS, mix_layers=False)
    values = engine.metrics()
    assert values["engine/temperature"] == pytest.approx(1.0, abs=1e-5)
    assert values["engine/repetition_penalty"] == pytest.approx(1.05, abs=1e-5)
    assert values["engine/top_p"] == pytest.approx(0.99, abs=1e-5)
    tokens, length = _batch()
    with torch.no_grad():
        dist, out = engine(backbone, tokens, length)
        plain = out.logits[torch.arange(6), length.view(-1) - 1][:, ACTIONS].softmax(-1)
    assert (dist.probs - plain).abs().max() < 0.05
    assert InferenceEngine.for_backbone(backbone, ACTIONS).metrics()[
        "engine/last_layer_weight"
    ] == pytest.approx(0.9)


def test_repetition_penalty_lowers_only_tokens_in_context():
    logits = torch.zeros(1, 4)
    tokens, length = torch.tensor([[1, 3, 0, 0]]), torch.tensor([[2]])
    present = context_presence(tokens, length, 4)
    assert present.tolist() == [[0.0, 1.0, 0.0, 1.0]]  # padding after length does not count
    probs = decode_logits(logits, present, 1.0, 0.999, 2.0, None).softmax(-1)
    assert probs[0, 1] == pytest.approx(probs[0, 0] / 2) and probs[0, 0] == pytest.approx(probs[0, 2])


def test_hard_top_p_keeps_the_nucleus_and_smooth_gate_approximates_it():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    hard = decode_logits(logits, torch.zeros(1, 4), 1.0, 0.7, 1.0, None).softmax(-1)
    assert torch.allclose(hard, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    smooth = decode_logits(logits, torch.zeros(1, 4), 1.0, 0.7, 1.0, 0.01).softmax(-1)
    assert (smooth - hard).abs().max() < 0.01
    cold = decode_logits(logits, torch.zeros(1, 4), 0.1, 0.999, 1.0, None).softmax(-1)
    assert cold[0, 0] > 0.99


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match="d_model"):
        InferenceEngine(2, 2, VOCAB, ACTIONS, conditioned=True)
    with pytest.raises(ValueError, match="action_token_ids"):
        InferenceEngine(2, 2, VOCAB, [3, 40])
    with pytest.raises(ValueError, match="top_p_mode"):
        InferenceEngine(2, 2, VOCAB, ACTIONS, top_p_mode="nucleus")
    backbone = make_backbone(VOCAB).eval()
    engine = InferenceEngine.for_backbone(backbone, ACTIONS)
    tokens, length = _batch()
    with pytest.raises(ValueError, match="return_layers=True"):
        engine.distribution(backbone(tokens), tokens, length, backbone.output_logits)


def test_sampling_is_reproducible_from_a_generator():
    dist = torch.distributions.Categorical(logits=torch.randn(64, 10))
    a = sample_actions(dist, torch.Generator().manual_seed(3))
    b = sample_actions(dist, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() < 10
