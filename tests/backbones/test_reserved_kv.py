"""A reserved state (``Backbone.reserve_state``) streams exactly as the plain one, writing each token's
keys and values in place instead of copying the whole KV cache every step."""

from __future__ import annotations

import pytest
import torch

from agents.backbones import build_backbone
from tests.backbones.helpers import VARIANTS, VOCAB, tiny


def streamed_logits(model, tokens: torch.Tensor, prefix: int, reserve: int | None) -> torch.Tensor:
    """Logits of ``tokens`` read as a prefix, then one token a call, the state reserved after the prefix."""
    out = model(tokens[:, :prefix])
    state, pieces = out.state, [out.logits]
    if reserve is not None:
        state = model.reserve_state(state, reserve)
    for t in range(prefix, tokens.shape[1]):
        out = model(tokens[:, t : t + 1], state=state)
        pieces.append(out.logits)
        state = out.state
    return torch.cat(pieces, dim=1)


@pytest.mark.parametrize("variant", ["transformer", "titans", "act_recursion"])
@pytest.mark.parametrize("room", [16, 9])  # 9: full after two tokens, so the cache doubles mid-stream
def test_a_reserved_state_streams_the_logits_of_the_whole_sequence(variant, room):
    torch.manual_seed(0)
    model = build_backbone(tiny(**VARIANTS[variant])).eval()
    tokens = torch.randint(0, VOCAB, (3, 16))
    with torch.no_grad():
        full = model(tokens).logits
        reserved = streamed_logits(model, tokens, prefix=7, reserve=room)
        plain = streamed_logits(model, tokens, prefix=7, reserve=None)
    torch.testing.assert_close(reserved, full, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(reserved, plain, atol=1e-6, rtol=1e-6)


def test_a_reserved_cache_is_written_in_place_and_keeps_its_room():
    model = build_backbone(tiny()).eval()
    tokens = torch.randint(0, VOCAB, (2, 6))
    with torch.no_grad():
        state = model.reserve_state(model(tokens[:, :4]).state, 32)
        buffer = state["layers"][0]["kv"]["k"]
        after = model(tokens[:, 4:5], state=state).state
    kv = after["layers"][0]["kv"]
    assert kv["k"] is buffer and kv["k"].shape[2] == 32 and kv["length"] == 5 and after["pos"] == 5


@pytest.mark.gpu
def test_a_reserved_state_streams_as_the_plain_one_on_cuda_under_bf16():
    torch.manual_seed(0)
    model = build_backbone(tiny(d_model=64)).cuda().eval()
    tokens = torch.randint(0, VOCAB, (4, 40), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", torch.bfloat16):
        reserved = streamed_logits(model, tokens, prefix=30, reserve=34)  # doubles after 4 tokens
        plain = streamed_logits(model, tokens, prefix=30, reserve=None)
    torch.testing.assert_close(reserved.float(), plain.float(), atol=2e-2, rtol=2e-2)
