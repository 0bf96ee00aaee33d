"""Linear: nn.Linear with a backward whose matmuls cuBLAS runs fast at every width.

Autograd's backward of ``F.linear`` multiplies the output gradient by the (out, in) weight as stored. On the
H100 (bf16, 65,536 rows) cuBLAS runs that input-gradient matmul at 270-320 TFLOP/s when the input width is
448 (the width parameter matching gives the memory backbones), against ~700 at 512. Multiplying by the
transpose of a contiguous transposed copy (a few microseconds for these weights) runs at ~700 at both, and
the weight gradient computed as (x^T g)^T instead of g^T x is as fast or faster at the widths measured
(docs/benchmarks.md, seventh session). The results are the same products, so the module is a drop-in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _LinearFunction(torch.autograd.Function):
    """y = x W^T + b with the backward's operand layouts chosen for speed (see the module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        device = x.device.type
        if torch.is_autocast_enabled(device):  # cast once, as nn.Linear would, and save the cast operands
            dtype = torch.get_autocast_dtype(device)
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        x_dtype, weight_dtype, bias_dtype = ctx.dtypes
        g = grad.reshape(-1, grad.shape[-1]).to(weight.dtype)
        need_x, need_weight, need_bias = ctx.needs_input_grad
        grad_x = grad_weight = grad_bias = None
        if need_x:
            grad_x = (g @ weight.t().contiguous().t()).view(*grad.shape[:-1], x.shape[-1]).to(x_dtype)
        if need_weight:
            grad_weight = (x.reshape(-1, x.shape[-1]).t() @ g).t().to(weight_dtype)
        if need_bias:
            grad_bias = g.sum(0, dtype=torch.promote_types(g.dtype, torch.float32)).to(bias_dtype)
        return grad_x, grad_weight, grad_bias


class Linear(nn.Linear):
    """A drop-in ``nn.Linear`` (same parameters, state dict and forward) with a faster backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LinearFunction.apply(x, self.weight, self.bias)
