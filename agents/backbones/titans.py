"""NeuralMemory: Titans-style long-term memory, a small MLP per head trained at test time.

The memory M(k) = silu(k W1) W2 learns the association k_t -> v_t online. Its "surprise" is the gradient
of the associative loss ||M(k_t) - v_t||^2; with data-dependent learning rate theta_t, momentum eta_t and
forgetting alpha_t (Behrouz et al. 2024):

    S_t = eta_t * S_{t-1} - theta_t * grad_t,      W_t = (1 - alpha_t) * W_{t-1} + S_t.

As in the paper's parallel training form, the gradients inside a chunk are taken at the weights of the
chunk's start (mini-batch gradient descent), which makes the chunk's whole update a few matmuls with
decay coefficients from log-space cumulative sums (no division by a product, no overflow); only
the chunks run one after another. Tokens read the memory with the weights of their chunk's start. The
block combines memory and attention through a learned gate (MAG); see transformer.Block.

Precision: the weights, momenta, gates and every state update are float32. The chunk's matmuls (reads and
surprise gradients) take their operands in the projections' dtype, bf16 under autocast, as mixed-precision
training does with master weights; on the H100 this saved 6% of a training step and ~0.3 GiB.

With ``inspect=True`` a call also returns each token's learning rate, momentum and forgetting per head and
the memory MLP's weights it leaves behind.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.backbones.base import InspectionMap, MemoryOutput
from agents.backbones.chunking import prepend_pending
from agents.backbones.linear import Linear

SILU_GRAD_MAX = 1.1  # max of d silu(h) / dh (about 1.0998, at h ~ 2.4)
# The largest momentum eta a token may have (a gate saturating at 1 would never let the momentum decay,
# and with no forgetting the weights then grew without bound: NaN after ~16K tokens at any learning rate;
# at 0.99 they stay bounded over 32K tokens with every gate saturated). Gates below it are unchanged.
MAX_MOMENTUM = 0.99
LOG_MAX_MOMENTUM = math.log(MAX_MOMENTUM)


def silu_grad(h: torch.Tensor) -> torch.Tensor:
    """d silu(h) / dh."""
    s = torch.sigmoid(h)
    return s * (1.0 + h * (1.0 - s))


def memory_mlp(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The memory's forward: (B, H, T, d) -> (B, H, T, d) through weights (B, H, d, m) and (B, H, m, d)."""
    return F.silu(x @ w1) @ w2


def step_scales(
    coef: torch.Tensor, k: torch.Tensor, a: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-LMS factors (B, H, 1, 1) for W1's and W2's step of one chunk, 1 unless it would overshoot.

    The chunk's step on W2 is one gradient step on sum_s c_s ||a_s W2 - v_s||^2, whose curvature is at
    most e2 = sum_s c_s |a_s|^2 (``coef`` (B, H, C, 1) holds c_s; ``a`` the hidden activations (B, H, C, m)).
    It cannot overshoot while e2 <= 1, so a larger e2 scales the step by 1 / e2, as normalised LMS does.
    W1's step likewise, with its inputs (the keys ``k``) and the gain of the rest of the memory: silu'
    (at most 1.1) times W2's gain on this chunk, |y|^2 / |a|^2 with ``y`` the memory's outputs. Without
    it a large learning rate, or gates that saturate in training, made the weights grow without bound
    (NaN logits within 1K tokens); with it they stay finite at any learning rate. The factors are
    treated as constants by autograd.
    """
    with torch.no_grad():
        a2 = a.float().square().sum(-1, keepdim=True)
        e2 = (coef * a2).sum(-2, keepdim=True)
        gain = y.float().square().sum((-2, -1), keepdim=True) / a2.sum(-2, keepdim=True).clamp(min=1e-12)
        e1 = (coef * k.float().square().sum(-1, keepdim=True)).sum(-2, keepdim=True)
        e1 = e1 * (SILU_GRAD_MAX**2 * gain).clamp(min=1.0)
        return e1.clamp(min=1.0).reciprocal(), e2.clamp(min=1.0).reciprocal()


def update_coefficients(
    lr: torch.Tensor, log_momentum: torch.Tensor, log_keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coefficients of one chunk's closed-form update from per-token theta, log eta, log(1 - alpha) (B,H,C).

    With gradients g_s all taken at the chunk-start weights W_0 (momentum S_0), the chunk-end values are
      W_C = keep * W_0 + carry * S_0 - sum_s c_s g_s,     S_C = mom * S_0 - sum_s d_s g_s.
    Returns (c, d, keep, carry, mom), c and d (B,H,C), the rest (B,H). Momentum is capped at MAX_MOMENTUM.
    """
    log_momentum = log_momentum.clamp(max=LOG_MAX_MOMENTUM)
    le, la = log_momentum.cumsum(-1), log_keep.cumsum(-1)  # inclusive cumulative logs
    la_end, le_end = la[..., -1:], le[..., -1:]
    # c_s = theta_s * sum_{t>=s} exp(base_t - le_s), base_t = la_end - la_t + le_t. A reverse
    # log-cum-sum-exp gives every s in O(C); each term's exponent is <= 0, so r_s - le_s <= log C.
    base = la_end - la + le
    r = torch.logcumsumexp(base.flip(-1), dim=-1).flip(-1)
    c = lr * (r - le).exp()
    d = lr * (le_end - le).exp()
    carry = r[..., 0].exp()
    return c, d, la_end[..., 0].exp(), carry, le_end[..., 0].exp()


class NeuralMemory(nn.Module):
    """Multi-head neural long-term memory; output (B, T, D), state = weights, momenta and pending inputs."""

    def __init__(self, d_model: int, n_heads: int, expansion: int, chunk: int, max_lr: float) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.chunk, self.max_lr = n_heads, d_model // n_heads, chunk, max_lr
        hidden = expansion * self.head_dim
        self.qkv = Linear(d_model, 3 * d_model, bias=False)
        self.gates = Linear(d_model, 3 * n_heads)  # learning rate, momentum, forgetting per head
        self.gates._keep_init = True
        nn.init.normal_(self.gates.weight, std=0.02)
        with torch.no_grad():  # start with theta ~ 0.12 * max_lr, eta ~ 0.88, alpha ~ 0.02
            self.gates.bias.copy_(torch.tensor([-2.0, 2.0, -4.0]).repeat_interleave(n_heads))
        self.w1 = nn.Parameter(torch.randn(n_heads, self.head_dim, hidden) / self.head_dim**0.5)
        self.w2 = nn.Parameter(torch.randn(n_heads, hidden, self.head_dim) / hidden**0.5)
        self.out_norm = nn.RMSNorm(self.head_dim)
        self.out = Linear(d_model, d_model, bias=False)

    def init_state(self, batch_size: int, device: torch.device | str) -> dict[str, torch.Tensor]:
        return self._fresh(batch_size, torch.device(device))

    def _fresh(self, b: int, device: torch.device) -> dict[str, torch.Tensor]:
        w1 = self.w1.float().to(device).expand(b, -1, -1, -1)
        w2 = self.w2.float().to(device).expand(b, -1, -1, -1)
        pending = torch.zeros(b, 0, self.qkv.in_features, device=device)
        return {
            "w1": w1,
            "w2": w2,
            "s1": torch.zeros_like(w1),
            "s2": torch.zeros_like(w2),
            "pending": pending,
        }

    def forward(
        self,
        x: torch.Tensor,
        state: dict[str, Any] | None = None,
        return_state: bool = True,
        inspect: bool = False,
    ) -> MemoryOutput:
        """Memory output (B, T, D) and the next state; without ``return_state`` the state is None and the
        last chunk, when nothing follows it, is only read: its surprise update would feed the state alone
        (so an inspected snapshot then shows the weights before that update)."""
        b, t, d = x.shape
        state = state if state is not None else self._fresh(b, x.device)
        xf, n_pending = prepend_pending(x, state["pending"])
        length, n_heads, head_dim, c = xf.shape[1], self.n_heads, self.head_dim, self.chunk
        qkv = self.qkv(xf).view(b, length, 3, n_heads, head_dim)  # the autocast dtype (bf16 on the GPU)
        dtype = qkv.dtype  # of the memory's matmuls; its weights, momenta and their updates stay float32
        gates = self.gates(xf).float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            gates = gates.view(b, length, 3, n_heads).permute(2, 0, 3, 1)  # (3, B, H, L)
            lr, log_mom, log_keep = (
                self.max_lr * torch.sigmoid(gates[0]),
                F.logsigmoid(gates[1]),
                F.logsigmoid(-gates[2]),
            )
            w1, w2, s1, s2 = (state[key].float() for key in ("w1", "w2", "s1", "s2"))
            reads = []
            n_full = length // c
            # the chunks whose update someone reads: a later chunk, the unfinished one, or the state
            n_updates = n_full if return_state or length > n_full * c else n_full - 1
            if n_full:  # everything that does not depend on the memory's weights, for all chunks at once
                full = n_full * c
                # (B, H, n, 2C, dh): each chunk's normalised queries, then its keys, one matmul operand
                qk = qkv[:, :full, :2].unflatten(1, (n_full, c)).permute(0, 4, 1, 3, 2, 5).float()
                qk = F.normalize(qk, dim=-1).flatten(3, 4).to(dtype)
                v = qkv[:, :full, 2].unflatten(1, (n_full, c)).permute(0, 3, 1, 2, 4)  # (B, H, n, C, dh)
                gated = (z[..., :full].unflatten(-1, (n_full, c)) for z in (lr, log_mom, log_keep))
                coefficients = update_coefficients(*gated)
                for i in range(n_updates):
                    chunk_coefficients = tuple(z[:, :, i] for z in coefficients)
                    read, w1, w2, s1, s2 = self.chunk_step(
                        qk[:, :, i], v[:, :, i], chunk_coefficients, w1, w2, s1, s2
                    )
                    reads.append(read)
                if n_updates < n_full:
                    reads.append(memory_mlp(qk[:, :, -1, :c], w1.to(dtype), w2.to(dtype)))
            if length > n_full * c:  # the unfinished chunk reads, and waits to be written
                q = F.normalize(qkv[:, n_full * c :, 0].float(), dim=-1).transpose(1, 2).to(dtype)
                reads.append(memory_mlp(q, w1.to(dtype), w2.to(dtype)))
            out = torch.cat(reads, dim=2)[:, :, n_pending:].float()
            out = self.out_norm(out).transpose(1, 2).reshape(b, t, d)
            new_state = {"w1": w1, "w2": w2, "s1": s1, "s2": s2, "pending": xf[:, n_full * c :]}
            new_state = new_state if return_state else None
        out = self.out(out)
        stats = {
            "lr_mean": lr.detach().mean(),
            "forget_mean": 1.0 - log_keep.detach().exp().mean(),
            "weight_norm": w1.detach().norm(dim=(-2, -1)).mean(),
        }
        if not inspect:
            return MemoryOutput(out, new_state, stats)
        tokens = slice(n_pending, n_pending + t)
        per_token = {
            "learning_rate": lr.detach()[:, None, :, tokens],
            "momentum": log_mom.detach().exp()[:, None, :, tokens],
            "forgetting": 1.0 - log_keep.detach().exp()[:, None, :, tokens],
        }
        addressing = {name: InspectionMap(value, "memory head", "token") for name, value in per_token.items()}
        snapshot = {
            "w1": InspectionMap(w1.detach(), "input channel", "hidden unit", "memory head"),
            "w2": InspectionMap(w2.detach(), "hidden unit", "output channel", "memory head"),
        }
        return MemoryOutput(out, new_state, stats, addressing, snapshot)

    @staticmethod
    def chunk_step(
        qk: torch.Tensor,
        v: torch.Tensor,
        coefficients: tuple[torch.Tensor, ...],
        w1: torch.Tensor,
        w2: torch.Tensor,
        s1: torch.Tensor,
        s2: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """Read the chunk with its start weights, then apply its surprise update in closed form.

        ``qk`` (B, H, 2C, d) holds the chunk's queries, then its keys; ``v`` (B, H, C, d) its values;
        ``coefficients`` is ``update_coefficients(lr, log_momentum, log_keep)`` of this chunk. The matmuls
        run in ``qk``'s dtype (bf16 under autocast, accumulating in float32); the weights and momenta
        (float32) and their updates stay in float32.
        """
        dtype, c = qk.dtype, v.shape[2]
        h = qk @ w1.to(dtype)  # one matmul for the reads and the gradients
        a = F.silu(h)
        y = a @ w2.to(dtype)
        read, y_k, a_k, h_k = y[:, :, :c], y[:, :, c:], a[:, :, c:], h[:, :, c:]
        err = 2.0 * (y_k - v)  # d loss / d y for loss ||y - v||^2
        delta = (err @ w2.transpose(-1, -2).to(dtype)) * silu_grad(h_k)  # d loss / d (k W1)
        coef, mcoef, keep, carry, mom = (z[..., None] for z in coefficients)
        # One matmul per weight gives both the weight step (coef) and the momentum step (mcoef); the
        # coefficients scale the narrower operand (keys: d wide, against m for delta).
        k = qk[:, :, c:]
        scale1, scale2 = step_scales(coef, k, a_k, y_k)
        g1 = torch.cat((scale1 * coef * k, scale1 * mcoef * k), dim=-1).to(dtype).transpose(-1, -2) @ delta
        g2 = a_k.transpose(-1, -2) @ torch.cat((scale2 * coef * err, scale2 * mcoef * err), dim=-1).to(dtype)
        (step1, mstep1), (step2, mstep2) = g1.float().chunk(2, dim=-2), g2.float().chunk(2, dim=-1)
        keep, carry, mom = keep[..., None], carry[..., None], mom[..., None]
        new_w1, new_w2 = keep * w1 + carry * s1 - step1, keep * w2 + carry * s2 - step2
        new_s1, new_s2 = mom * s1 - mstep1, mom * s2 - mstep2
        return read, new_w1, new_w2, new_s1, new_s2
