"""HebbianMemory: fast weights M_t = lambda_t * M_{t-1} + k_t v_t^T, read as q_t M_t, per head.

lambda_t = alpha * sigmoid(w . x_t + b) is a learned, input-dependent decay times the plasticity coefficient
alpha that a curriculum sets while training (``set_plasticity``). Training uses the chunked parallel form
(``hebbian_chunked``; on the GPU the same maths in fused Triton kernels, ``hebbian_kernel``), which equals
the step-by-step recurrence (``hebbian_recurrent``, which a streamed single token takes: one step instead
of a chunk padded to full size) and never divides by a cumulative decay: every decay
factor is exp of a masked, non-positive sum of log-decays, so nothing overflows for any alpha in (0, 1] at
any length. Both run in float32, also under autocast (the projections into and out of the memory follow
the ambient autocast). With ``inspect=True`` a call also returns each token's decay lambda_t per head and
the fast weights it leaves behind.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agents.backbones.base import InspectionMap, MemoryOutput
from agents.backbones.hebbian_kernel import fused_available, hebbian_fused
from agents.backbones.linear import Linear

_MIN_LOG_ALPHA = -30.0  # alpha below e^-30 acts as "forget everything"; keeps log finite


def hebbian_recurrent(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor, memory: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference recurrence, one step at a time. q, k (B,H,T,dk), v (B,H,T,dv), log_decay (B,H,T),
    memory (B,H,dk,dv). Returns outputs (B,H,T,dv) and the final memory."""
    outs = []
    for t in range(q.shape[2]):
        memory = log_decay[:, :, t, None, None].exp() * memory + k[:, :, t, :, None] * v[:, :, t, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, :, t], memory))
    return torch.stack(outs, dim=2), memory


def hebbian_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    memory: torch.Tensor,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same computation as ``hebbian_recurrent`` in parallel over chunks (no Python loop over time).

    Within a chunk: o_i = sum_{j<=i} exp(g_i - g_j) (q_i . k_j) v_j + exp(g_i) q_i S_c, with g the in-chunk
    cumulative log-decay and S_c the memory at the chunk's start. The chunk-start memories come from one
    (chunks x chunks) matrix of decays applied to per-chunk summaries.
    """
    b, h, t, _ = k.shape
    dv = v.shape[-1]
    pad = (-t) % chunk
    if pad:  # zero keys and zero log-decay after the end leave outputs and the final memory unchanged
        q, k, v = (F.pad(z, (0, 0, 0, pad)) for z in (q, k, v))
        log_decay = F.pad(log_decay, (0, pad))
    n = (t + pad) // chunk
    q, k, v = (z.reshape(b, h, n, chunk, z.shape[-1]) for z in (q, k, v))
    g = log_decay.reshape(b, h, n, chunk).cumsum(-1)  # (b,h,n,C), inclusive
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    decay = (g[..., :, None] - g[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    intra = ((q @ k.transpose(-1, -2)) * decay) @ v  # (b,h,n,C,dv)

    g_last = g[..., -1]  # (b,h,n): total log-decay of each chunk
    summaries = (k * (g_last[..., None] - g).exp()[..., None]).transpose(-1, -2) @ v  # (b,h,n,dk,dv)
    ends = g_last.cumsum(-1)  # log-decay from sequence start to the end of chunk c
    starts = ends - g_last  # ... to the start of chunk c
    before = torch.ones(n, n, dtype=torch.bool, device=q.device).tril(diagonal=-1)
    carry = (starts[..., :, None] - ends[..., None, :]).masked_fill(~before, float("-inf")).exp()
    chunk_start = torch.einsum("bhcs,bhskv->bhckv", carry, summaries)
    chunk_start = chunk_start + starts.exp()[..., None, None] * memory[:, :, None]
    inter = (q * g.exp()[..., None]) @ chunk_start
    out = (intra + inter).reshape(b, h, n * chunk, dv)[:, :, :t]
    final = (ends[..., -1:] - ends).exp()  # decay from the end of chunk c to the end of the sequence
    new_memory = ends[..., -1].exp()[..., None, None] * memory + torch.einsum(
        "bhs,bhskv->bhkv", final, summaries
    )
    return out, new_memory


class HebbianMemory(nn.Module):
    """Multi-head fast-weight memory with learned, plasticity-scaled decay; output (B, T, D)."""

    def __init__(
        self, d_model: int, n_heads: int, chunk: int = 64, plasticity: float = 0.99, decay_init: float = 0.99
    ):
        super().__init__()
        self.n_heads, self.head_dim, self.chunk = n_heads, d_model // n_heads, chunk
        self.qkv = Linear(d_model, 3 * d_model, bias=False)
        self.decay = Linear(d_model, n_heads)
        self.decay._keep_init = True  # starts at sigmoid(b) = decay_init, independent of the input
        nn.init.zeros_(self.decay.weight)
        nn.init.constant_(
            self.decay.bias, math.log(decay_init / (1.0 - decay_init)) if decay_init < 1 else 10.0
        )
        self.out_norm = nn.RMSNorm(self.head_dim)
        self.out = Linear(d_model, d_model, bias=False)
        self.register_buffer("plasticity", torch.tensor(float(plasticity)))

    def set_plasticity(self, alpha: float) -> None:
        """Set alpha, the factor on the learned decay (0.1 forgets fast, 0.99 remembers long)."""
        if not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"plasticity alpha must lie in (0, 1], got {alpha}.")
        self.plasticity.fill_(float(alpha))

    def init_state(self, batch_size: int, device: torch.device | str) -> torch.Tensor:
        return torch.zeros(batch_size, self.n_heads, self.head_dim, self.head_dim, device=device)

    def forward(
        self,
        x: torch.Tensor,
        state: torch.Tensor | None = None,
        return_state: bool = True,
        inspect: bool = False,
    ) -> MemoryOutput:
        """Read ``x`` (B, T, D) through the fast weights while writing each token into them; the state is
        the fast-weight matrix (B, H, dk, dv)."""
        b, t, d = x.shape
        # Projections follow the ambient autocast (bf16 on the GPU); the recurrence runs in float32.
        qkv = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim)
        decay_logits = self.decay(x).float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            log_alpha = self.plasticity.float().log().clamp(min=_MIN_LOG_ALPHA)
            log_decay = (F.logsigmoid(decay_logits) + log_alpha).transpose(1, 2)  # (b,h,t)
            memory = (state if state is not None else self.init_state(b, x.device)).float()
            if t > 1 and fused_available(qkv, self.chunk):
                out, memory = hebbian_fused(qkv, log_decay, memory, self.chunk)
            else:
                q, k, v = qkv.float().permute(2, 0, 3, 1, 4).unbind(0)
                q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
                if t == 1:  # a streamed token: one step of the recurrence, not a chunk padded to full size
                    out, memory = hebbian_recurrent(q, k, v, log_decay, memory)
                else:
                    out, memory = hebbian_chunked(q, k, v, log_decay, memory, self.chunk)
            out = self.out_norm(out).transpose(1, 2).reshape(b, t, d)
        out = self.out(out)
        stats = {
            "decay_mean": log_decay.detach().exp().mean(),
            "memory_norm": memory.detach().norm(dim=(-2, -1)).mean(),
        }
        addressing = snapshot = None
        if inspect:
            decay = log_decay.detach().exp()[:, None]  # (B, 1, H, T)
            addressing = {"decay": InspectionMap(decay, "memory head", "token")}
            fast = memory.detach().float()
            snapshot = {"fast_weights": InspectionMap(fast, "key channel", "value channel", "memory head")}
        return MemoryOutput(out, memory if return_state else None, stats, addressing, snapshot)
