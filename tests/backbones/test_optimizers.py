"""build_optimizer: AdamW and MuGrokfast (Muon on hidden matrices, Grokfast filter, QK-clip), exact resume."""

import pytest
import torch
import torch.nn.functional as F

from agents.backbones import build_backbone
from agents.training.optimizers import MuGrokfast, build_optimizer
from foundation.checkpoint import load_checkpoint, save_checkpoint
from tests.backbones.helpers import VOCAB, tiny


def _step(model, opt, tokens):
    loss = F.cross_entropy(model(tokens[:, :-1]).logits.flatten(0, 1), tokens[:, 1:].flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


@pytest.mark.parametrize("name", ["adamw", "mugrokfast"])
def test_checkpoint_resumes_exactly(name, tmp_path):
    torch.manual_seed(0)
    tokens = torch.randint(0, VOCAB, (2, 9))
    model = build_backbone(tiny(memory="hebbian"))
    opt = build_optimizer(model, name, lr=1e-2)
    for _ in range(3):
        _step(model, opt, tokens)
    save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "c.pt")
    expected = [_step(model, opt, tokens) for _ in range(3)]

    torch.manual_seed(1)  # a different init, overwritten by the checkpoint
    resumed = build_backbone(tiny(memory="hebbian"))
    opt2 = build_optimizer(resumed, name, lr=1e-2)
    state = load_checkpoint(tmp_path / "c.pt")
    resumed.load_state_dict(state["model"])
    opt2.load_state_dict(state["opt"])
    got = [_step(resumed, opt2, tokens) for _ in range(3)]
    assert torch.equal(torch.stack(got), torch.stack(expected))


def test_mugrokfast_routes_hidden_matrices_to_muon_and_the_rest_to_adamw():
    model = build_backbone(tiny(memory="external"))
    opt = build_optimizer(model, "mugrokfast")
    muon = {id(p) for g in opt.muon.param_groups for p in g["params"]}
    adamw = {id(p) for g in opt.adamw.param_groups for p in g["params"]}
    assert id(model.blocks[0].attn.qkv.weight) in muon and id(model.blocks[0].ffn.down.weight) in muon
    assert id(model.embed.weight) in adamw and id(model.blocks[0].attn_norm.weight) in adamw
    assert id(model.blocks[0].memory.memory_init) in adamw  # a learned memory, not a hidden layer
    assert muon.isdisjoint(adamw) and len(muon) + len(adamw) == len(list(model.parameters()))
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)  # schedulers see every group
    assert all(g["lr"] == pytest.approx(1.5e-4) for g in opt.muon.param_groups + opt.adamw.param_groups)
    del scheduler


def test_grokfast_adds_lambda_times_the_gradient_ema():
    layer = torch.nn.Linear(3, 1, bias=False)
    opt = MuGrokfast(layer, lr=0.0, weight_decay=0.0, grokfast_alpha=0.5, grokfast_lambda=2.0, qk_clip=None)
    grads = [torch.ones(1, 3), 3 * torch.ones(1, 3)]
    seen = []
    for g in grads:
        layer.weight.grad = g.clone()
        opt._grokfast()
        seen.append(layer.weight.grad.clone())
    torch.testing.assert_close(seen[0], 1 + 2 * torch.ones(1, 3))  # ema starts at g
    torch.testing.assert_close(seen[1], 3 + 2 * 2 * torch.ones(1, 3))  # ema = 0.5 * 1 + 0.5 * 3


def test_qk_clip_brings_the_largest_attention_logit_back_to_the_bound():
    torch.manual_seed(0)
    model = build_backbone(tiny(n_layers=1))
    with torch.no_grad():
        model.blocks[0].attn.qkv.weight.mul_(40.0)  # huge queries and keys
    opt = build_optimizer(model, "mugrokfast", lr=0.0, qk_clip=5.0)
    tokens = torch.randint(0, VOCAB, (2, 12))
    model(tokens)
    attn = model.blocks[0].attn
    before = attn.max_logit.clone()
    assert before.max() > 5.0
    opt.step()  # no gradients: only the clip acts
    attn.max_logit.zero_()
    model(tokens)
    torch.testing.assert_close(attn.max_logit, torch.minimum(before, torch.tensor(5.0)), rtol=1e-3, atol=1e-3)


def test_unknown_optimizer_fails_clearly():
    with pytest.raises(ValueError, match="mugrokfast"):
        build_optimizer(build_backbone(tiny()), "sgd")


@pytest.mark.parametrize("past", [0, 3])
def test_recorded_max_logit_covers_exactly_the_visible_pairs(past):
    from agents.backbones.layers import SelfAttention

    torch.manual_seed(0)
    attn = SelfAttention(d_model=16, n_heads=2, causal=True)
    q, k = torch.randn(2, 2, 9, 8), torch.randn(2, 2, 9 + past, 8)
    attn._record_max_logit(q, k, past, block=4)
    logits = q @ k.transpose(-1, -2) / 8**0.5
    visible = torch.ones(9, 9 + past, dtype=torch.bool).tril(diagonal=past)
    expected = logits.masked_fill(~visible, float("-inf")).amax(dim=(0, 2, 3))
    torch.testing.assert_close(attn.max_logit, torch.maximum(expected, torch.zeros(2)))
