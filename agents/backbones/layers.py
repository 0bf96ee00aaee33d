"""Transformer building blocks: rotary positions, attention (with a KV cache), feed-forwards.

Attention goes through ``F.scaled_dot_product_attention`` so the GPU picks flash / memory-efficient kernels.
Norms are ``torch.nn.RMSNorm``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.backbones.active_rows import ActiveRows
from agents.backbones.linear import Linear


class RotaryEmbedding(nn.Module):
    """Rotary position tables (cos, sin) for absolute positions ``offset .. offset + length``."""

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        cos, sin = self._tables(0, max_seq_len)
        self.register_buffer("cos_cached", cos, persistent=False)
        self.register_buffer("sin_cached", sin, persistent=False)

    def _tables(self, offset: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(offset, offset + length, device=self.inv_freq.device, dtype=torch.float32)
        angles = torch.outer(pos, self.inv_freq)
        return angles.cos(), angles.sin()

    def forward(self, offset: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if offset + length <= self.cos_cached.shape[0]:
            return self.cos_cached[offset : offset + length], self.sin_cached[offset : offset + length]
        return self._tables(offset, length)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of the last dim of ``x`` (B, H, T, dh) by position."""
    x1, x2 = x.float().chunk(2, dim=-1)
    out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return out.type_as(x)


def extend_kv(
    cache: dict[str, Any] | None, k: torch.Tensor, v: torch.Tensor
) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor, int]:
    """The KV cache after appending ``k``, ``v`` (B, H, t, dh): (new cache, every key, every value, the
    number of positions cached before).

    A plain cache (``{"k", "v"}``) is concatenated into a new one. A reserved cache (:func:`reserve_kv`:
    buffers with room to spare and a ``length``) is written in place and doubles its room when full, so
    streaming one token a step costs no copy of the whole cache; its keys and values are views."""
    if cache is None or ("length" not in cache and cache["k"].shape[2] == 0):
        return {"k": k, "v": v}, k, v, 0
    if "length" not in cache:
        past = cache["k"].shape[2]
        k = torch.cat((cache["k"].to(k.dtype), k), dim=2)
        v = torch.cat((cache["v"].to(v.dtype), v), dim=2)
        return {"k": k, "v": v}, k, v, past
    past, end = int(cache["length"]), int(cache["length"]) + k.shape[2]
    if end > cache["k"].shape[2]:
        cache = reserve_kv(cache, max(end, 2 * cache["k"].shape[2]))
    keys, values = cache["k"], cache["v"]
    keys[:, :, past:end] = k
    values[:, :, past:end] = v
    new = {"k": keys, "v": values, "length": end}
    return new, keys[:, :, :end].to(k.dtype), values[:, :, :end].to(v.dtype), past


def reserve_kv(cache: dict[str, Any], capacity: int) -> dict[str, Any]:
    """A reserved copy of ``cache`` with room for ``capacity`` positions (at least its own), which later
    forwards fill in place (:func:`extend_kv`): a state holding it continues once, as streaming does; to
    branch from one state, keep it unreserved."""
    length = int(cache.get("length", cache["k"].shape[2]))

    def room(buffer: torch.Tensor) -> torch.Tensor:
        grown = buffer.new_empty(*buffer.shape[:2], max(capacity, length), buffer.shape[3])
        grown[:, :, :length] = buffer[:, :, :length]
        return grown

    return {"k": room(cache["k"]), "v": room(cache["v"]), "length": length}


class SelfAttention(nn.Module):
    """Multi-head self-attention with rotary positions, per-head output scaling and an optional KV cache.

    With ``record_max_logit`` set (by the MuGrokfast optimiser's QK-clip), each training forward keeps the
    running maximum attention logit per head in ``max_logit``, computed without gradient. With
    ``inspect=True`` a call also returns its attention probabilities, computed apart from the fused kernel
    (which never materialises them), so the output is the same with or without it.
    """

    def __init__(self, d_model: int, n_heads: int, causal: bool, dropout: float = 0.0):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.causal = causal
        self.dropout = dropout
        self.qkv = Linear(d_model, 3 * d_model, bias=False)
        self.out = Linear(d_model, d_model, bias=False)
        self.record_max_logit = False
        self.register_buffer("max_logit", torch.zeros(n_heads), persistent=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        head_scale: torch.Tensor | None = None,
        cache: dict[str, Any] | None = None,
        inspect: bool = False,
    ) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor | None]:
        """``x`` (B, T, D) -> (B, T, D), the KV cache covering every position seen so far, and with
        ``inspect`` the attention probabilities (B, H, T, S) over those S positions (else None)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        cache, k, v, past = extend_kv(cache, k, v)
        mask = None
        is_causal = False  # set by a branch: compiled with dynamic shapes, SDPA needs a bool, not a SymBool
        if self.causal and past == 0 and t > 1:
            is_causal = True
        if self.causal and past > 0 and t > 1:
            # Query i sits at absolute position past + i and sees keys 0 .. past + i.
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
        if self.record_max_logit and self.training:
            self._record_max_logit(q, k, past)
        probs = self.probabilities(q, k) if inspect else None
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0
        )
        if head_scale is not None:
            y = y * head_scale.to(y.dtype).view(1, self.n_heads, 1, 1)
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.out(y), cache, probs

    def forward_rows(
        self,
        h_rows: torch.Tensor,
        h_full: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        rows: ActiveRows,
        head_scale: torch.Tensor | None = None,
        cache: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Attention for the running positions only: queries from ``h_rows`` (B, A, D) at ``rows.pos``,
        keys and values from every position of ``h_full`` (B, T, D), whose halted positions hold their
        last pass's inputs. Returns (B, A, D) and the KV cache over all positions, as ``forward`` does."""
        b, t, d = h_full.shape
        a = h_rows.shape[1]
        q = F.linear(h_rows, self.qkv.weight[:d]).view(b, a, self.n_heads, self.head_dim).transpose(1, 2)
        kv = F.linear(h_full, self.qkv.weight[d:]).view(b, t, 2, self.n_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4)
        cos, sin = rope
        k = apply_rotary(k, cos, sin)
        q = apply_rotary(q, cos[rows.pos][:, None], sin[rows.pos][:, None])
        cache, k, v, past = extend_kv(cache, k, v)
        keys = torch.arange(past + t, device=h_full.device)
        visible = keys[None, None, :] <= (rows.pos + past)[:, :, None]  # (B, A, S); padding sees key 0
        if not self.causal:
            visible = torch.ones_like(visible)
        mask = visible[:, None]
        if self.record_max_logit and self.training:
            self._record_max_logit_rows(q, k, mask & rows.valid[:, None, :, None])
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        if head_scale is not None:
            y = y * head_scale.to(y.dtype).view(1, self.n_heads, 1, 1)
        y = y.transpose(1, 2).reshape(b, a, d)
        return self.out(y), cache

    @torch.no_grad()
    def _record_max_logit_rows(
        self, q: torch.Tensor, k: torch.Tensor, visible: torch.Tensor, block: int = 256
    ) -> None:
        """``_record_max_logit`` for gathered queries: the running max over the (query, key) pairs that
        ``visible`` (B, 1, A, S) allows, in query blocks."""
        best = torch.full_like(self.max_logit, float("-inf"))
        for start in range(0, q.shape[2], block):
            logits = (q[:, :, start : start + block] @ k.transpose(-1, -2)).float() / self.head_dim**0.5
            logits = logits.masked_fill(~visible[:, :, start : start + block], float("-inf"))
            best = torch.maximum(best, logits.amax(dim=(0, 2, 3)))
        self.max_logit.copy_(torch.maximum(self.max_logit, best))

    @torch.no_grad()
    def probabilities(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T / sqrt(dh)) in float32 over the keys each query sees: q (B, H, T, dh) holds the
        newest T of the S positions in k (B, H, S, dh) -> (B, H, T, S), zero where causality hides a key."""
        scores = (q.float() @ k.float().transpose(-1, -2)) / self.head_dim**0.5
        if self.causal:
            t, s = q.shape[2], k.shape[2]
            visible = torch.ones(t, s, dtype=torch.bool, device=q.device).tril(diagonal=s - t)
            scores = scores.masked_fill(~visible, float("-inf"))
        return scores.softmax(dim=-1)

    @torch.no_grad()
    def _record_max_logit(self, q: torch.Tensor, k: torch.Tensor, past: int, block: int = 256) -> None:
        """Running max of q.k / sqrt(dh) per head over visible pairs, in query blocks so that memory stays
        at (B, H, block, T) instead of (B, H, T, T)."""
        t, total = q.shape[2], k.shape[2]
        best = torch.full_like(self.max_logit, float("-inf"))
        keys = torch.arange(total, device=q.device)
        for start in range(0, t, block):
            logits = (q[:, :, start : start + block] @ k.transpose(-1, -2)).float() / self.head_dim**0.5
            if self.causal:
                rows = torch.arange(start, start + logits.shape[2], device=q.device) + past
                logits = logits.masked_fill(keys[None, :] > rows[:, None], float("-inf"))
            best = torch.maximum(best, logits.amax(dim=(0, 2, 3)))
        self.max_logit.copy_(torch.maximum(self.max_logit, best))


class FeedForward(nn.Module):
    """SwiGLU (silu(x W_g) * x W_u) W_d, or the classic GELU MLP."""

    def __init__(self, d_model: int, hidden: int, kind: str, dropout: float = 0.0):
        super().__init__()
        self.kind = kind
        self.up = Linear(d_model, 2 * hidden if kind == "swiglu" else hidden, bias=False)
        self.down = Linear(hidden, d_model, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up(x)
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h)
        return self.drop(self.down(h))
