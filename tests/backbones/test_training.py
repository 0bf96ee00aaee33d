"""A tiny model of every kind memorises a tiny batch: the loss falls by at least 90%."""

import pytest
import torch
import torch.nn.functional as F

from agents.backbones import build_backbone
from agents.training.optimizers import build_optimizer
from tests.backbones.helpers import VOCAB, tiny

CASES = {
    "transformer": ({}, "adamw"),
    "transformer_mugrokfast": ({}, "mugrokfast"),
    "encoder": ({"causal": False}, "adamw"),
    "hebbian": ({"memory": "hebbian", "memory_chunk": 8}, "adamw"),
    "external": ({"memory": "external", "memory_chunk": 8}, "adamw"),
    "titans": ({"memory": "titans", "memory_chunk": 8}, "mugrokfast"),
    "act_recursion": ({"recursion": 2, "act": True, "deep_supervision": True}, "adamw"),
}


def train_loss(model, tokens):
    """Next-token loss (or same-position reconstruction for the encoder), deep supervision and ponder cost."""
    inputs, targets = (tokens, tokens) if not model.cfg.causal else (tokens[:, :-1], tokens[:, 1:])
    out = model(inputs)
    logits = out.deep_logits if out.deep_logits is not None else (out.logits,)
    loss = sum(F.cross_entropy(z.flatten(0, 1), targets.flatten()) for z in logits) / len(logits)
    return loss + out.aux_loss if out.aux_loss is not None else loss


@pytest.mark.parametrize("name", CASES)
def test_tiny_model_overfits_a_tiny_batch(name):
    overrides, optimizer = CASES[name]
    torch.manual_seed(0)
    model = build_backbone(tiny(**overrides))
    opt = build_optimizer(model, optimizer, lr=1e-2)
    tokens = torch.randint(0, VOCAB, (4, 17))
    first = None
    for _ in range(40):
        loss = train_loss(model, tokens)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert train_loss(model, tokens).item() <= 0.1 * first
