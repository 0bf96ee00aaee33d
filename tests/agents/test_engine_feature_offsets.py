"""InferenceEngine(feature_offsets=True): a linear path from the per-step features to the conditioned
offsets, zero at the start, learned at the knobs' rate (the bench's conditioned text engine uses it)."""

import pytest
import torch

from agents.engine import InferenceEngine, sample_actions
from tests.agents.fixtures import make_backbone

VOCAB = 12
ACTIONS = list(range(2, 12))
N_FEATURES = 3


def _inputs(b: int = 6, t: int = 10):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(2, VOCAB, (b, t), generator=g)
    length = torch.full((b, 1), t)
    features = torch.zeros(b, N_FEATURES)
    features[: b // 2, 0] = 1.0  # the first half of the rows "loop"
    return tokens, length, features


def _engine(backbone, **knobs) -> InferenceEngine:
    torch.manual_seed(1)
    return InferenceEngine.for_backbone(
        backbone, ACTIONS, conditioned=True, n_features=N_FEATURES, top_p=0.8, **knobs
    )


def test_feature_offsets_start_at_zero_so_the_engine_starts_at_its_fixed_setting():
    torch.manual_seed(0)
    backbone = make_backbone(VOCAB).eval()
    tokens, length, features = _inputs()
    with torch.no_grad():
        plain, _ = _engine(backbone)(backbone, tokens, length, features=features)
        linear, _ = _engine(backbone, feature_offsets=True)(backbone, tokens, length, features=features)
    assert torch.equal(plain.logits, linear.logits)


def test_feature_offsets_move_each_rows_temperature_by_its_features():
    torch.manual_seed(0)
    backbone = make_backbone(VOCAB).eval()
    engine = _engine(backbone, feature_offsets=True)
    with torch.no_grad():
        engine.condition[-1].weight.zero_()  # only the linear path moves the knobs
        engine.feature_offsets.weight[0, 0] = 1.0  # feature 0 raises the raw temperature
    tokens, length, features = _inputs()
    with torch.no_grad():
        engine(backbone, tokens, length, features=features)
        base = float(engine.temperature())
    temperature = engine._last["temperature"]
    assert torch.allclose(temperature[3:], torch.full((3,), base))
    assert (temperature[:3] > base + 0.3).all()  # softplus(raw + 1) - softplus(raw) at T ~ 1


def test_feature_offsets_learn_at_the_knobs_rate_and_get_gradient():
    torch.manual_seed(0)
    backbone = make_backbone(VOCAB).eval()
    engine = _engine(backbone, feature_offsets=True)
    groups = engine.param_groups(lr=0.05, condition_lr_scale=0.1)
    linear = {id(p) for p in engine.feature_offsets.parameters()}
    assert linear <= {id(p) for p in groups[0]["params"]} and groups[0]["lr"] == 0.05
    assert not linear & {id(p) for p in groups[1]["params"]}
    tokens, length, features = _inputs()
    dist, _ = engine(backbone, tokens, length, features=features)
    dist.log_prob(sample_actions(dist, torch.Generator().manual_seed(2))).sum().backward()
    assert engine.feature_offsets.weight.grad[:, 0].abs().sum() > 0
    with torch.no_grad():
        before = float(engine.default_pull())
        engine.feature_offsets.bias.fill_(0.5)
        assert float(engine.default_pull()) - before == pytest.approx(0.5)  # the pull counts it: 2 * 0.5**2


@pytest.mark.parametrize("knobs", [{"conditioned": False}, {"conditioned": True, "n_features": 0}])
def test_feature_offsets_without_features_name_the_fix(knobs):
    backbone = make_backbone(VOCAB).eval()
    with pytest.raises(ValueError, match="n_features > 0"):
        InferenceEngine.for_backbone(backbone, ACTIONS, feature_offsets=True, **knobs)
