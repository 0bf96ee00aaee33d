"""ExternalMemory: a DNC-style slot memory with content-addressed reads and writes and usage-based allocation.

A memory of N rows (slots) of width W. Writes happen once per chunk of C tokens: each of the write heads
attention-pools the chunk into a write key, value, erase vector and gates, then writes with the DNC rule

    w = g_write * (g_alloc * allocation(usage) + (1 - g_alloc) * content(key, M))
    M <- M * (1 - w e^T) + w v^T,      usage <- usage + w - usage * w

where allocation prefers the least-used rows (Graves et al. 2016). Before writing, free heads release rows
(usage *= prod(1 - f * w_free)). Every token reads with its own content-addressed read heads from the memory
as it stood at the start of its chunk, so reads are one parallel batched op and the sequential part is one
small update per chunk, not per token (the per-token DNC would need T sequential steps; within a chunk the
attention layer already sees every token). The temporal link matrix of the DNC is left out.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.backbones.chunking import pad_to_chunks, prepend_pending

_EPS = 1e-6


def content_weights(keys: torch.Tensor, strength: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """softmax over rows of strength * cosine(key, row). keys (..., K, W), strength (..., K), memory
    (..., N, W) with matching leading dims -> (..., K, N)."""
    sim = F.normalize(keys, dim=-1, eps=_EPS) @ F.normalize(memory, dim=-1, eps=_EPS).transpose(-1, -2)
    return torch.softmax(strength.unsqueeze(-1) * sim, dim=-1)


def allocation_weights(usage: torch.Tensor) -> torch.Tensor:
    """DNC allocation: a[phi_j] = (1 - u[phi_j]) * prod_{i<j} u[phi_i], phi = rows by ascending usage."""
    usage = _EPS + (1.0 - _EPS) * usage
    sorted_usage, order = torch.sort(usage, dim=-1, stable=True)  # ties: lowest index first, on every device
    # prod as exp(cumsum(log)): usage >= eps, and unlike cumprod's backward this never checks for zeros
    # on the host (a GPU sync per write).
    before = F.pad(sorted_usage[..., :-1].log().cumsum(-1), (1, 0)).exp()
    return torch.zeros_like(usage).scatter(-1, order, (1.0 - sorted_usage) * before)


class ExternalMemory(nn.Module):
    """Slot memory read by every token and written once per chunk; output (B, T, D)."""

    def __init__(
        self, d_model: int, slots: int, width: int, read_heads: int, write_heads: int, chunk: int
    ) -> None:
        super().__init__()
        self.slots, self.width, self.chunk = slots, width, chunk
        self.read_heads, self.write_heads = read_heads, write_heads
        self.read = nn.Linear(d_model, read_heads * (width + 1))  # key and strength per read head
        self.read_out = nn.Linear(read_heads * width, d_model, bias=False)
        self.pool = nn.Linear(d_model, write_heads + read_heads)  # chunk pooling scores: write, free heads
        self.write = nn.Linear(d_model, 3 * width + 3)  # key, value, erase, strength, write and alloc gates
        self.free = nn.Linear(d_model, width + 2)  # key, strength, free gate
        self.memory_init = nn.Parameter(torch.randn(slots, width) * 0.5)
        self._stats: dict[str, torch.Tensor] = {}
        # Introspection (off by default: no extra work in training): when True, each call keeps its
        # addressing, detached, in ``addressing``: "read" (B, T, read_heads, slots) per token and
        # "write" (B, chunks * write_heads, slots) per write.
        self.record_addressing = False
        self.addressing: dict[str, torch.Tensor] = {}

    def init_state(self, batch_size: int, device: torch.device | str) -> dict[str, torch.Tensor]:
        memory = self.memory_init.float().to(device).expand(batch_size, -1, -1)
        return self._fresh(memory, batch_size, device)

    def _fresh(
        self, memory: torch.Tensor, batch_size: int, device: torch.device | str
    ) -> dict[str, torch.Tensor]:
        usage = torch.zeros(batch_size, self.slots, device=device)
        pending = torch.zeros(batch_size, 0, self.read.in_features, device=device)
        return {"memory": memory, "usage": usage, "pending": pending}

    def forward(
        self, x: torch.Tensor, state: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        b, t, _ = x.shape
        if state is None:  # a fresh sequence starts from the learned memory (with gradient)
            state = self._fresh(self.memory_init.float().expand(b, -1, -1), b, x.device)
        xf, n_pending = prepend_pending(x, state["pending"])
        self.addressing = {}
        read_params = self.read(xf).float()  # per-token projections follow the ambient autocast
        with torch.autocast(device_type=x.device.type, enabled=False):  # the memory itself: float32
            n_full = xf.shape[1] // self.chunk
            memory, usage = state["memory"].float(), state["usage"].float()
            starts: list[torch.Tensor] = []
            if n_full:
                starts, memory, usage = self._write_chunks(xf[:, : n_full * self.chunk], memory, usage)
            reads = self._read(read_params, [*starts, memory])[:, n_pending : n_pending + t]
            if "read" in self.addressing:
                self.addressing["read"] = self.addressing["read"][:, n_pending : n_pending + t]
            new_state = {"memory": memory, "usage": usage, "pending": xf[:, n_full * self.chunk :]}
        out = self.read_out(reads)
        self._stats["usage_mean"] = usage.detach().mean()
        self._stats["slots_used"] = (usage.detach() > 0.5).float().mean()
        return out, new_state

    def _write_chunks(
        self, xf: torch.Tensor, memory: torch.Tensor, usage: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Apply one write per complete chunk; returns the memory at each chunk's start, the final memory
        and the final usage."""
        chunks = xf.view(xf.shape[0], -1, self.chunk, xf.shape[-1])  # (B, n, C, D)
        scores = torch.softmax(self.pool(chunks), dim=2)  # attention pooling over each chunk
        pooled = torch.einsum("bncj,bncd->bnjd", scores, chunks)  # (B, n, write+read heads, D)
        w_key, w_val, erase, w_rest = self.write(pooled[:, :, : self.write_heads]).split(
            [self.width, self.width, self.width, 3], dim=-1
        )
        erase = torch.sigmoid(erase)
        w_strength = 1.0 + F.softplus(w_rest[..., 0])
        write_gate, alloc_gate = torch.sigmoid(w_rest[..., 1]), torch.sigmoid(w_rest[..., 2])
        f_key, f_rest = self.free(pooled[:, :, self.write_heads :]).split([self.width, 2], dim=-1)
        f_strength, free_gate = 1.0 + F.softplus(f_rest[..., 0]), torch.sigmoid(f_rest[..., 1])
        chunk_memories, writes = [], []
        for c in range(chunks.shape[1]):
            chunk_memories.append(memory)
            w_free = content_weights(f_key[:, c], f_strength[:, c], memory)  # (B, R, N)
            retention = (1.0 - free_gate[:, c, :, None] * w_free).clamp_min(_EPS).log().sum(1).exp()
            usage = usage * retention  # prod over free heads, without prod's host-syncing backward
            for j in range(self.write_heads):
                content = content_weights(w_key[:, c, j : j + 1], w_strength[:, c, j : j + 1], memory)[:, 0]
                ga = alloc_gate[:, c, j, None]
                w = write_gate[:, c, j, None] * (ga * allocation_weights(usage) + (1.0 - ga) * content)
                memory = (
                    memory * (1.0 - w[:, :, None] * erase[:, c, j, None, :])
                    + w[:, :, None] * w_val[:, c, j, None, :]
                )
                if self.record_addressing:
                    writes.append(w.detach())
                usage = usage + w - usage * w
        self._stats["alloc_gate"] = alloc_gate.detach().mean()
        self._stats["write_gate"] = write_gate.detach().mean()
        if writes:
            self.addressing["write"] = torch.stack(writes, dim=1)
        return chunk_memories, memory, usage

    def _read(self, read_params: torch.Tensor, memories: list[torch.Tensor]) -> torch.Tensor:
        """Every token reads the memory as it stood at the start of its chunk (``memories[c]``);
        ``read_params`` (B, L, R * (W + 1)) are the tokens' read keys and strengths. -> (B, L, R * W)."""
        b, length, _ = read_params.shape
        chunks = pad_to_chunks(read_params, self.chunk)  # (B, n_read, C, R * (W + 1))
        n_read = chunks.shape[1]
        stacked = torch.stack(memories[:n_read], dim=1)  # (B, n_read, N, W)
        keys, strength = chunks.view(b, n_read, self.chunk, self.read_heads, self.width + 1).split(
            [self.width, 1], dim=-1
        )
        weights = content_weights(
            keys.flatten(2, 3), 1.0 + F.softplus(strength.flatten(2, 4)), stacked
        )  # (B, n_read, C*R, N)
        reads = (weights @ stacked).view(b, n_read * self.chunk, self.read_heads * self.width)
        probs = weights.detach().clamp_min(1e-12)
        self._stats["read_entropy"] = -(probs * probs.log()).sum(-1).mean()
        if self.record_addressing:
            per_token = weights.detach().view(b, n_read * self.chunk, self.read_heads, -1)
            self.addressing["read"] = per_token[:, :length]
        return reads[:, :length]

    def metrics(self) -> dict[str, torch.Tensor]:
        return self._stats
