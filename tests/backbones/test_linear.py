"""Linear is a drop-in nn.Linear: same outputs, gradients (exactly, in float64; in dtype under autocast) and
state dict, whatever the input's shape and whether it has a bias."""

import pytest
import torch
from torch import nn

from agents.backbones.linear import Linear


def twins(bias: bool, dtype=torch.float64):
    torch.manual_seed(0)
    ours = Linear(6, 5, bias=bias).to(dtype)
    reference = nn.Linear(6, 5, bias=bias).to(dtype)
    reference.load_state_dict(ours.state_dict())
    return ours, reference


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(6,), (4, 6), (2, 3, 6)])
def test_outputs_and_every_gradient_match_nn_linear(bias, shape):
    ours, reference = twins(bias)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: ours(z), (x,))
    weights = torch.randn(*shape[:-1], 5, dtype=torch.float64)
    results = []
    for module in (ours, reference):
        x.grad = None
        out = module(x)
        (out * weights).sum().backward()
        results.append([out, x.grad] + [p.grad for p in module.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_under_bf16_autocast_gradients_keep_the_parameters_dtype_and_match():
    ours, reference = twins(bias=True, dtype=torch.float32)
    x = torch.randn(8, 6, requires_grad=True)
    grads = []
    for module in (ours, reference):
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(x)
        assert out.dtype == torch.bfloat16
        out.float().square().sum().backward()
        assert x.grad.dtype == torch.float32 and module.weight.grad.dtype == torch.float32
        grads.append([x.grad, module.weight.grad, module.bias.grad])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


def test_input_without_grad_still_trains_the_weights():
    ours, reference = twins(bias=False)
    x = torch.randn(3, 6, dtype=torch.float64)
    for module in (ours, reference):
        module(x).sum().backward()
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad)
