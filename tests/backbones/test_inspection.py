"""forward(..., inspect=True): attention maps equal softmax(QK^T / sqrt(d)) recomputed by hand, memory
addressing is well-formed, every variant reports its maps, and nothing else about the forward changes."""

import math

import pytest
import torch

from agents.backbones import build_backbone
from tests.backbones.helpers import VARIANTS, VOCAB, tiny

# The addressing and snapshot names each memory reports per block.
MEMORY_MAPS = {
    None: (set(), set()),
    "hebbian": ({"decay"}, {"fast_weights"}),
    "external": ({"read_weights", "write_weights"}, {"slots", "usage"}),
    "titans": ({"learning_rate", "momentum", "forgetting", "gate_attention"}, {"w1", "w2"}),
}


def _model(name: str, **overrides):
    torch.manual_seed(0)
    return build_backbone(tiny(**VARIANTS[name], **overrides)).eval()


def _rotate(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary positions from their definition: pair (i, i + dh/2) turns by position * base^(-2i/dh)."""
    half = x.shape[-1] // 2
    angles = positions.double()[:, None] * base ** (-torch.arange(half, dtype=torch.float64) / half)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half].double(), x[..., half:].double()
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def _reference_attention(weight: torch.Tensor, h: torch.Tensor, heads: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(dh)) with a causal mask, in float64, from a block's normed input h (B, T, D)."""
    b, t, d = h.shape
    dh = d // heads
    qkv = (h.double() @ weight.double().T).view(b, t, 3, heads, dh)
    q, k = (_rotate(qkv[:, :, i].transpose(1, 2), torch.arange(t)) for i in (0, 1))
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    hidden = torch.ones(t, t, dtype=torch.bool).triu(diagonal=1)
    return scores.masked_fill(hidden, float("-inf")).softmax(dim=-1)


@pytest.mark.parametrize("name", ["transformer", "act_recursion", "titans_recursion"])
def test_attention_maps_equal_softmax_of_scaled_query_key_products(name):
    model = _model(name)
    inputs: dict[int, torch.Tensor] = {}  # each block's last attention input: the last pass is reported
    for i, block in enumerate(model.blocks):
        block.attn.register_forward_pre_hook(lambda _, args, i=i: inputs.__setitem__(i, args[0].detach()))
    tokens = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        maps = model(tokens, inspect=True).inspection.attention
    assert sorted(maps) == [f"block{i}" for i in range(model.n_layers)]
    for i, block in enumerate(model.blocks):
        got = maps[f"block{i}"]
        assert (got.rows, got.cols, got.panel) == ("query position", "key position", "head")
        assert got.values.shape == (2, model.n_heads, 9, 9) and got.values.dtype == torch.float32
        want = _reference_attention(block.attn.qkv.weight, inputs[i], model.n_heads)
        torch.testing.assert_close(got.values.double(), want, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(got.values.sum(-1), torch.ones(2, model.n_heads, 9))
        assert torch.all(got.values.triu(diagonal=1) == 0)  # no query sees a later key


def test_streamed_attention_maps_cover_the_cache_and_match_the_full_sequence():
    model = _model("transformer")
    tokens = torch.randint(0, VOCAB, (1, 11))
    with torch.no_grad():
        full = model(tokens, inspect=True).inspection.attention["block1"].values
        first = model(tokens[:, :4])
        second = model(tokens[:, 4:], state=first.state, inspect=True).inspection.attention["block1"].values
    assert second.shape == (1, model.n_heads, 7, 11)  # 7 new queries over 4 cached + 7 new keys
    torch.testing.assert_close(second, full[:, :, 4:], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_inspecting_changes_no_output_state_gradient_or_metric(name):
    model = _model(name).train()
    tokens = torch.randint(0, VOCAB, (2, 11))
    runs = []
    for inspect in (False, True):
        model.zero_grad()
        out = model(tokens, inspect=inspect)
        loss = out.logits.square().mean() + (out.aux_loss if out.aux_loss is not None else 0.0)
        loss.backward()
        runs.append((out, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (plain, grads), (inspected, inspected_grads) = runs
    assert plain.inspection is None and inspected.inspection is not None
    assert torch.equal(plain.logits, inspected.logits) and torch.equal(plain.hidden, inspected.hidden)
    assert all(torch.equal(a, b) for a, b in zip(grads, inspected_grads))
    for before, after in zip(plain.state["layers"], inspected.state["layers"]):
        flat = [(before["kv"], after["kv"]), (before.get("memory"), after.get("memory"))]
        for a, b in flat:
            a, b = (z if isinstance(z, dict) else {"": z} for z in (a, b))
            assert all(torch.equal(a[k], b[k]) for k in a if a[k] is not None)
    assert plain.metrics.keys() == inspected.metrics.keys()
    assert all(torch.equal(plain.metrics[k], inspected.metrics[k]) for k in plain.metrics)
    assert model.metrics() == {k: float(v) for k, v in inspected.metrics.items()}


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_reports_its_maps_and_snapshots(name):
    model = _model(name)
    t = 11
    with torch.no_grad():
        inspection = model(torch.randint(0, VOCAB, (2, t)), inspect=True).inspection
    addressing, snapshot = MEMORY_MAPS[model.cfg.memory]
    blocks = model.cfg.memory_layer_indices()
    assert set(inspection.addressing) == {f"block{i}.{part}" for i in blocks for part in addressing}
    assert set(inspection.memory) == {f"block{i}.{part}" for i in blocks for part in snapshot}
    assert len(inspection.attention) == model.n_layers
    every = (inspection.attention, inspection.addressing, inspection.memory)
    for heatmap in (heatmap for group in every for heatmap in group.values()):
        assert heatmap.values.dim() == 4 and heatmap.values.shape[0] == 2
        assert not heatmap.values.requires_grad and torch.isfinite(heatmap.values).all()
        assert heatmap.rows or heatmap.values.shape[2] == 1
        assert heatmap.cols and (heatmap.panel or heatmap.values.shape[1] == 1)
        for axis, size in ((heatmap.rows, heatmap.values.shape[2]), (heatmap.cols, heatmap.values.shape[3])):
            if axis == "token":  # per-token maps cover exactly this call's tokens
                assert size == t


def test_external_addressing_rows_are_distributions_and_follow_the_stream():
    model = _model("external")  # chunk 4, 8 slots
    tokens = torch.randint(0, VOCAB, (2, 13))
    with torch.no_grad():
        full = model(tokens, inspect=True)
        first = model(tokens[:, :6], inspect=True)
        second = model(tokens[:, 6:], state=first.state, inspect=True)
    cfg = model.cfg
    reads = full.inspection.addressing["block0.read_weights"].values
    writes = full.inspection.addressing["block0.write_weights"].values
    assert reads.shape == (2, cfg.memory_read_heads, 13, cfg.memory_slots)
    assert writes.shape == (2, cfg.memory_write_heads, 3, cfg.memory_slots)  # one write per whole chunk
    torch.testing.assert_close(reads.sum(-1), torch.ones(2, cfg.memory_read_heads, 13))
    assert bool((writes >= 0).all()) and bool((writes.sum(-1) <= 1 + 1e-5).all())
    # the second piece carries 2 pending tokens: its reads are its own 7 tokens, its writes chunks 2 and 3
    streamed = second.inspection.addressing["block0.read_weights"].values
    torch.testing.assert_close(streamed, reads[:, :, 6:], atol=1e-5, rtol=1e-4)
    assert first.inspection.addressing["block0.write_weights"].values.shape[2] == 1
    torch.testing.assert_close(
        second.inspection.addressing["block0.write_weights"].values, writes[:, :, 1:], atol=1e-5, rtol=1e-4
    )
    state = second.state["layers"][0]["memory"]
    assert torch.equal(second.inspection.memory["block0.usage"].values[:, 0, 0], state["usage"])
    assert torch.equal(second.inspection.memory["block0.slots"].values[:, 0], state["memory"])


def test_hebbian_and_titans_report_their_gates_and_the_state_they_leave():
    hebbian = _model("hebbian", plasticity=0.5)
    with torch.no_grad():
        out = hebbian(torch.randint(0, VOCAB, (2, 7)), inspect=True)
    decay = out.inspection.addressing["block1.decay"].values
    assert decay.shape == (2, 1, hebbian.cfg.memory_heads or hebbian.n_heads, 7)
    assert bool((decay > 0).all()) and bool((decay <= 0.5 + 1e-6).all())  # plasticity bounds the decay
    assert torch.equal(out.inspection.memory["block1.fast_weights"].values, out.state["layers"][1]["memory"])
    titans = _model("titans")
    with torch.no_grad():
        out = titans(torch.randint(0, VOCAB, (2, 10)), inspect=True)
    maps = out.inspection.addressing
    lr = maps["block0.learning_rate"].values
    assert bool((lr > 0).all()) and bool((lr < titans.cfg.neural_memory_lr).all())
    for name in ("momentum", "forgetting", "gate_attention"):
        values = maps[f"block0.{name}"].values
        assert bool((values > 0).all()) and bool((values < 1).all())
    assert maps["block0.gate_attention"].values.shape == (2, 1, 10, titans.d_model)
    assert torch.equal(out.inspection.memory["block0.w1"].values, out.state["layers"][0]["memory"]["w1"])


@pytest.mark.parametrize("name", VARIANTS)
def test_a_forward_leaves_no_measurement_on_its_modules(name):
    """What a call measured is in its output; no submodule gains or swaps an attribute for later readers."""
    model = _model(name)
    modules = [m for m in model.modules() if m is not model]
    before = [{key: id(value) for key, value in vars(m).items()} for m in modules]
    with torch.no_grad():
        model(torch.randint(0, VOCAB, (2, 9)), inspect=True)
        model(torch.randint(0, VOCAB, (2, 9)))
    assert [{key: id(value) for key, value in vars(m).items()} for m in modules] == before


@pytest.mark.parametrize("memory", [None, "hebbian", "external", "titans"])
def test_compiled_blocks_take_the_flag_without_graph_breaks(memory):
    torch.manual_seed(0)
    model = build_backbone(tiny(memory=memory)).eval()
    tokens = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        eager = model(tokens, inspect=True)
        torch._dynamo.reset()
        for block in model.blocks:
            block.compile(backend="eager", fullgraph=True)  # a graph break would raise
        plain, inspected = model(tokens), model(tokens, inspect=True)
    torch._dynamo.reset()
    assert torch.equal(plain.logits, eager.logits) and plain.inspection is None
    for name, heatmap in eager.inspection.attention.items():
        torch.testing.assert_close(inspected.inspection.attention[name].values, heatmap.values)
