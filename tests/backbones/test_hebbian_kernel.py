"""On CUDA: the fused Triton Hebbian kernels compute what the torch chunked form computes, forward and every
gradient, at least as accurately (both against a float64 reference), and are what a CUDA block runs."""

import pytest
import torch
import torch.nn.functional as F

from agents.backbones import build_backbone
from agents.backbones import hebbian as hebbian_module
from agents.backbones.hebbian import hebbian_chunked
from tests.backbones.helpers import VOCAB, tiny

pytestmark = pytest.mark.gpu
pytest.importorskip("triton")
kernel = pytest.importorskip("agents.backbones.hebbian_kernel")


def inputs(t, d, decay, dtype=torch.float32, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    b, h = 2, 3
    qkv = 3.0 * torch.randn(b, t, 3, h, d, device="cuda", generator=gen)
    if decay == "mixed":
        log_decay = -torch.rand(b, h, t, device="cuda", generator=gen) * 2.0
    else:  # e^-30 on some steps, ~1 on others, as at alpha = 0.1 with a closed gate
        log_decay = torch.where(torch.rand(b, h, t, device="cuda", generator=gen) < 0.5, -30.0, -1e-4)
    memory = torch.randn(b, h, d, d, device="cuda", generator=gen)
    return [z.to(dtype).requires_grad_() for z in (qkv, log_decay, memory)]


def torch_form(qkv, log_decay, memory, chunk):
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    return hebbian_chunked(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, log_decay, memory, chunk)


def results(fn, args, chunk, weights):
    """Outputs, final memory and the gradients of a fixed weighted sum of both w.r.t. every input."""
    out, memory = fn(*args, chunk)
    ((out * weights[0]).sum() + (memory * weights[1]).sum()).backward()
    return [out, memory] + [z.grad for z in args]


@pytest.mark.parametrize("chunk, t, d", [(16, 80, 20), (64, 200, 56), (32, 100, 128)])
@pytest.mark.parametrize("decay", ["mixed", "extreme"])
def test_fused_forward_and_gradients_are_as_accurate_as_the_torch_form(chunk, t, d, decay):
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # full float32 on both sides
    try:
        exact_args = inputs(t, d, decay, torch.float64)
        out = torch_form(*exact_args, chunk)
        weights = [torch.randn_like(z) for z in out]
        exact = results(torch_form, exact_args, chunk, weights)
        weights = [w.float() for w in weights]
        reference = results(torch_form, inputs(t, d, decay), chunk, weights)
        fused = results(kernel.hebbian_fused, inputs(t, d, decay), chunk, weights)
    finally:
        torch.set_float32_matmul_precision(previous)
    names = ("outputs", "final memory", "d qkv", "d log_decay", "d memory")
    for name, want, ref, got in zip(names, exact, reference, fused, strict=True):
        ref_error = (ref.double() - want).abs().max().item()
        fused_error = (got.double() - want).abs().max().item()
        assert fused_error <= 2 * ref_error + 1e-5, f"{name}: fused {fused_error:.2e}, torch {ref_error:.2e}"


def test_fused_gradients_when_only_the_outputs_or_only_the_memory_are_used():
    for use in (0, 1):
        grads = []
        for fn in (torch_form, kernel.hebbian_fused):
            args = inputs(64, 16, "mixed", seed=1)
            fn(*args, 16)[use].square().sum().backward()
            grads.append([z.grad for z in args])
        for ref, got in zip(*grads, strict=True):
            torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-3)


def test_fused_kernels_take_bf16_projections_and_return_float32():
    qkv, log_decay, memory = inputs(128, 32, "mixed")
    out, new_memory = kernel.hebbian_fused(qkv.bfloat16(), log_decay, memory, 64)
    ref_out, ref_memory = torch_form(qkv.bfloat16().float(), log_decay, memory, 64)
    assert out.dtype == new_memory.dtype == torch.float32
    torch.testing.assert_close(out, ref_out, atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(new_memory, ref_memory, atol=1e-2, rtol=1e-2)


def test_fused_path_is_what_a_cuda_hebbian_block_runs_and_is_stable_over_16k_tokens(monkeypatch):
    model = build_backbone(tiny(memory="hebbian", d_model=64, memory_chunk=64, plasticity=0.1)).cuda()
    calls = []

    def counting(*args):
        calls.append(1)
        return kernel.hebbian_fused(*args)

    monkeypatch.setattr(hebbian_module, "hebbian_fused", counting)
    tokens = torch.randint(0, VOCAB, (1, 16384), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = model(tokens).logits
    logits.float().mean().backward()
    assert calls, "a CUDA Hebbian block did not take the fused kernels"
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
