"""Each memory's parallel form equals its recurrence, stays finite at extreme decays, and reports metrics."""

import pytest
import torch
from torch.func import grad

from agents.backbones import build_backbone
from agents.backbones.external import allocation_weights, multi_allocation_weights
from agents.backbones.hebbian import HebbianMemory, hebbian_chunked, hebbian_recurrent
from agents.backbones.titans import MAX_MOMENTUM, NeuralMemory, memory_mlp, update_coefficients
from tests.backbones.helpers import VOCAB, tiny


@pytest.mark.parametrize("chunk", [1, 3, 8, 32])
@pytest.mark.parametrize("decay", ["mixed", "extreme"])
def test_hebbian_chunked_form_equals_recurrence(chunk, decay):
    torch.manual_seed(chunk)
    b, h, t, dk, dv = 2, 3, 29, 5, 4
    q, k = torch.randn(b, h, t, dk), torch.randn(b, h, t, dk)
    v = torch.randn(b, h, t, dv)
    if decay == "mixed":
        log_decay = -torch.rand(b, h, t) * 2.0
    else:  # alpha = 0.1 times a near-zero gate on some steps, ~1 on others: e^-30 .. e^-1e-4
        log_decay = torch.where(
            torch.rand(b, h, t) < 0.5, torch.full((b, h, t), -30.0), torch.full((b, h, t), -1e-4)
        )
    memory = torch.randn(b, h, dk, dv)
    out_r, mem_r = hebbian_recurrent(q, k, v, log_decay, memory)
    out_c, mem_c = hebbian_chunked(q, k, v, log_decay, memory, chunk)
    torch.testing.assert_close(out_c, out_r, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mem_c, mem_r, atol=1e-4, rtol=1e-4)


def test_hebbian_plasticity_is_settable_and_bounds_the_decay():
    model = build_backbone(tiny(memory="hebbian"))
    tokens = torch.randint(0, VOCAB, (1, 9))
    for alpha in (0.1, 0.5, 0.99):
        model.set_plasticity(alpha)
        model(tokens)
        assert model.metrics()["hebbian/decay_mean"] <= alpha + 1e-6
    assert all(
        float(m.plasticity) == pytest.approx(0.99) for m in model.modules() if isinstance(m, HebbianMemory)
    )
    assert "plasticity" in "".join(model.state_dict())  # saved with checkpoints
    with pytest.raises(ValueError, match="plasticity"):
        model.set_plasticity(1.5)
    build_backbone(tiny()).set_plasticity(0.5)  # no Hebbian module: a no-op


@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_hebbian_is_finite_over_16k_tokens_under_bf16_autocast(alpha):
    torch.manual_seed(0)
    memory = HebbianMemory(d_model=16, n_heads=2, chunk=64, plasticity=alpha, decay_init=0.999)
    x = torch.randn(1, 16384, 16) * 10.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = memory(x)[:2]
    assert state.dtype == torch.float32
    assert torch.isfinite(out).all() and torch.isfinite(state).all()


def _chunk_step_weights(lr, log_mom, log_keep):
    """c_s by simulation: the weight with which token s's gradient enters the chunk-end W (B, H, C)."""
    eta, keep = log_mom.exp().clamp(max=MAX_MOMENTUM), log_keep.exp()
    weights = torch.zeros_like(lr)
    for s in range(lr.shape[-1]):
        momentum, w = -lr[..., s], keep[..., s] * 0.0 - lr[..., s]
        for t in range(s + 1, lr.shape[-1]):
            momentum = eta[..., t] * momentum
            w = keep[..., t] * w + momentum
        weights[..., s] = -w
    return weights


def _nlms_scales(lr, log_mom, log_keep, k, w1, w2):
    """Normalised-LMS factors of W1's and W2's step (B, H): 1 / max(1, curvature bound) at the chunk start."""
    c = _chunk_step_weights(lr, log_mom, log_keep)
    a = torch.nn.functional.silu(k @ w1)
    y = a @ w2
    gain = y.square().sum((-2, -1)) / a.square().sum((-2, -1))
    e1 = (c * k.square().sum(-1)).sum(-1) * (1.1**2 * gain).clamp(min=1.0)
    e2 = (c * a.square().sum(-1)).sum(-1)
    return 1.0 / e1.clamp(min=1.0), 1.0 / e2.clamp(min=1.0)


def _titans_reference(q, k, v, lr, log_mom, log_keep, w1, w2, s1, s2):
    """Token by token: gradient of ||M(k_t) - v_t||^2 by autograd at the chunk-start weights, then
    momentum (capped at MAX_MOMENTUM) and forgetting applied one step at a time, each weight's steps
    scaled by its normalised-LMS factor."""
    scale1, scale2 = _nlms_scales(lr, log_mom, log_keep, k, w1, w2)

    def loss(weights, key, value):
        return (
            (memory_mlp(key[None, None, None], weights[0][None, None], weights[1][None, None]) - value)
            .square()
            .sum()
        )

    start = (w1.clone(), w2.clone())
    for t in range(k.shape[2]):
        for bi in range(k.shape[0]):
            for hi in range(k.shape[1]):
                g1, g2 = grad(loss)((start[0][bi, hi], start[1][bi, hi]), k[bi, hi, t], v[bi, hi, t])
                eta, keep = log_mom[bi, hi, t].exp().clamp(max=MAX_MOMENTUM), log_keep[bi, hi, t].exp()
                s1[bi, hi] = eta * s1[bi, hi] - lr[bi, hi, t] * scale1[bi, hi] * g1
                s2[bi, hi] = eta * s2[bi, hi] - lr[bi, hi, t] * scale2[bi, hi] * g2
                w1[bi, hi] = keep * w1[bi, hi] + s1[bi, hi]
                w2[bi, hi] = keep * w2[bi, hi] + s2[bi, hi]
    return memory_mlp(q, *start), w1, w2, s1, s2


def test_titans_closed_form_chunk_update_equals_the_token_recurrence():
    torch.manual_seed(0)
    b, h, c, d, m = 2, 2, 6, 4, 8
    q, k, v = (torch.randn(b, h, c, d) for _ in range(3))
    lr, log_mom = torch.rand(b, h, c) * 0.5, -torch.rand(b, h, c)
    log_keep = torch.where(
        torch.rand(b, h, c) < 0.3, torch.full((b, h, c), -25.0), -torch.rand(b, h, c) * 0.1
    )
    weights = (
        torch.randn(b, h, d, m),
        torch.randn(b, h, m, d),
        torch.randn(b, h, d, m),
        torch.randn(b, h, m, d),
    )
    coefficients = update_coefficients(lr, log_mom, log_keep)
    fast = NeuralMemory.chunk_step(torch.cat((q, k), dim=2), v, coefficients, *weights)
    slow = _titans_reference(q, k, v, lr, log_mom, log_keep, *(w.clone() for w in weights))
    for got, want in zip(fast, slow):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("memory", ["hebbian", "external", "titans"])
def test_token_by_token_streaming_equals_the_parallel_form(memory):
    torch.manual_seed(1)
    model = build_backbone(tiny(memory=memory, n_layers=1)).eval()
    tokens = torch.randint(0, VOCAB, (2, 10))
    with torch.no_grad():
        full = model(tokens).logits
        state, steps = None, []
        for t in range(tokens.shape[1]):
            out = model(tokens[:, t : t + 1], state=state)
            steps.append(out.logits)
            state = out.state
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("memory", ["hebbian", "external", "titans"])
def test_memories_stay_finite_at_extreme_decays_under_bf16(memory):
    torch.manual_seed(0)
    cfg = tiny(memory=memory, plasticity=0.1, hebbian_decay_init=0.999, memory_chunk=16)
    model = build_backbone(cfg)
    if memory == "titans":  # forgetting ~1 in one head's gates, none in another's
        for block in model.blocks:
            block.memory.gates.bias.data[-cfg.n_heads :] = torch.tensor([30.0, -30.0, 30.0, -30.0])
    tokens = torch.randint(0, VOCAB, (2, 256))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(tokens)
        loss = out.logits.float().logsumexp(-1).mean()
    loss.backward()
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in model.metrics().values())


def test_external_memory_allocates_the_least_used_rows_and_reports_utilisation():
    usage = torch.tensor([[0.9, 0.0, 0.5, 1.0]])
    alloc = allocation_weights(usage)
    assert alloc.argmax().item() == 1 and alloc[0, 3] < 1e-5
    assert alloc.sum() <= 1.0 + 1e-6
    model = build_backbone(tiny(memory="external"))
    model(torch.randint(0, VOCAB, (2, 40)))
    metrics = model.metrics()
    for key in ("usage_mean", "slots_used", "read_entropy", "alloc_gate", "write_gate"):
        assert 0.0 <= metrics[f"external/{key}"] < 10.0
    assert metrics["external/usage_mean"] > 0.0  # writes happened


def test_titans_gate_and_memory_metrics_are_reported():
    model = build_backbone(tiny(memory="titans"))
    model(torch.randint(0, VOCAB, (2, 12)))
    metrics = model.metrics()
    assert 0.0 < metrics["titans/gate_attention"] < 1.0
    assert metrics["titans/lr_mean"] > 0.0 and metrics["titans/weight_norm"] > 0.0


def _sequential_allocations(usage, gates):
    """Reference: one full DNC allocation (with its own sort) per write head, usage updated in between."""
    allocations = []
    for h in range(gates.shape[-1]):
        alloc = allocation_weights(usage)
        allocations.append(alloc)
        usage = usage + (1.0 - usage) * gates[..., h, None] * alloc
    return torch.stack(allocations, dim=-2)


def test_write_heads_allocate_different_free_rows_from_one_sort():
    usage = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0, 0.0]])
    alloc = multi_allocation_weights(usage, torch.ones(2, 3))
    assert alloc[0].argmax(-1).tolist() == [1, 3, 4] and alloc[1, :2].argmax(-1).tolist() == [0, 4]
    assert alloc[1, 2].sum() < 1e-4  # no free row left for the third head
    # the rows the heads take together are those of one sort per head (which may order near-ties differently)
    reference = _sequential_allocations(usage, torch.ones(2, 3))
    torch.testing.assert_close(alloc.sum(-2), reference.sum(-2), atol=1e-5, rtol=0)
    torch.manual_seed(0)
    usage = torch.rand(4, 16)
    gates = torch.rand(4, 3)
    alloc = multi_allocation_weights(usage, gates)
    torch.testing.assert_close(alloc[:, 0], allocation_weights(usage))  # head 0 is the plain DNC allocation
    assert bool((alloc >= 0).all()) and bool((alloc.sum(-1) <= 1.0 + 1e-5).all())
    closed = multi_allocation_weights(usage, torch.zeros(4, 3))  # closed gates use up nothing
    torch.testing.assert_close(closed, allocation_weights(usage)[:, None].expand(-1, 3, -1))


def test_titans_chunk_step_in_bf16_keeps_float32_state_close_to_float32():
    torch.manual_seed(0)
    b, h, c, d, m = 2, 2, 16, 8, 16
    qk = torch.nn.functional.normalize(torch.randn(b, h, 2 * c, d), dim=-1)
    v = torch.randn(b, h, c, d)
    coefficients = update_coefficients(
        torch.rand(b, h, c) * 0.1, -torch.rand(b, h, c), -torch.rand(b, h, c) * 0.1
    )
    weights = (torch.randn(b, h, d, m) / d**0.5, torch.randn(b, h, m, d) / m**0.5)
    weights = (*weights, torch.zeros_like(weights[0]), torch.zeros_like(weights[1]))
    full = NeuralMemory.chunk_step(qk, v, coefficients, *weights)
    mixed = NeuralMemory.chunk_step(qk.bfloat16(), v.bfloat16(), coefficients, *weights)
    assert mixed[0].dtype == torch.bfloat16 and all(z.dtype == torch.float32 for z in mixed[1:])
    for got, want in zip(mixed, full):
        torch.testing.assert_close(got.float(), want, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("memory", ["hebbian", "external", "titans"])
def test_compiled_blocks_trace_once(memory):
    """A memory's metrics must not make a compiled block recompile on its second call (each recompile
    of the external memory's block took minutes on the GPU)."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    model = build_backbone(tiny(memory=memory, memory_chunk=4))
    torch._dynamo.reset()
    counters.clear()
    for block in model.blocks:
        block.compile(backend="eager")
    tokens = torch.randint(0, VOCAB, (2, 12))
    for _ in range(3):
        model(tokens).logits.sum().backward()
    assert counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()
