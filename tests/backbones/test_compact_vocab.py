"""A compact vocabulary embeds and predicts only the listed ids; the others can never be predicted."""

import pytest
import torch

from agents.backbones import build_backbone
from agents.backbones.transformer import UNUSED_LOGIT
from tests.backbones.helpers import VOCAB, tiny

IDS = [0, 1, 2, 3, 30, 36]


def test_logits_cover_the_full_vocabulary_with_unused_ids_out_of_reach():
    torch.manual_seed(0)
    model = build_backbone(tiny(token_ids=[36, 0, 1, 2, 3, 30]))  # stored sorted
    assert model.embed.weight.shape[0] == len(IDS) and model.cfg.token_ids == IDS
    tokens = torch.tensor([IDS * 2])
    logits = model(tokens).logits
    assert logits.shape == (1, 12, VOCAB)
    unused = [i for i in range(VOCAB) if i not in IDS]
    assert bool((logits[..., unused] == UNUSED_LOGIT).all()) and bool((logits[..., IDS] > -100).all())
    loss = torch.nn.functional.cross_entropy(logits.view(-1, VOCAB), tokens.view(-1).roll(1))
    loss.backward()
    assert torch.isfinite(loss) and model.embed.weight.grad.abs().sum() > 0
    fewer = build_backbone(tiny()).num_parameters() - model.num_parameters()
    assert fewer == (VOCAB - len(IDS)) * model.d_model  # tied embedding: one row per dropped id


@pytest.mark.parametrize("bad", [[], [0, 0], [VOCAB], [1.5]])
def test_bad_token_ids_name_the_fix(bad):
    with pytest.raises(ValueError, match="token_ids"):
        tiny(token_ids=bad)
