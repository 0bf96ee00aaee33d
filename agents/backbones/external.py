"""ExternalMemory: a DNC-style slot memory with content-addressed reads and writes and usage-based allocation.

A memory of N rows (slots) of width W. Writes happen once per chunk of C tokens: each of the H write heads
attention-pools the chunk into a write key, value, erase vector and gates; all heads write at once with the
DNC's multi-head rule (DeepMind's reference implementation)

    w_h = g_write_h * (g_alloc_h * a_h + (1 - g_alloc_h) * content(key_h, M))
    M <- M * prod_h (1 - w_h e_h^T) + sum_h w_h v_h^T,      usage <- 1 - (1 - usage) * prod_h (1 - w_h)

where a_h is the DNC allocation (Graves et al. 2016), which prefers the least-used rows: head h allocates
from the usage as the heads before it left it (``multi_allocation_weights``), with the rows ranked once
per chunk, so two heads with open gates take two different free rows. Before writing, free heads release
rows (usage *= prod(1 - f * w_free)). Every token reads with its own content-addressed read heads from the
memory as it stood at the start of its chunk, so reads are one parallel batched matmul and the sequential
part is one small update per chunk, not per token (the per-token DNC would need T sequential steps; within
a chunk the attention layer already sees every token). The temporal link matrix of the DNC is left out.
The rows and usage stay float32; the token-parallel parts (chunk pooling, reads) follow the ambient autocast.
With ``inspect=True`` a call also returns its read weights per token, its write weights per write, and the
rows and usage it leaves behind.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.backbones.base import InspectionMap, MemoryOutput
from agents.backbones.chunking import pad_to_chunks, prepend_pending
from agents.backbones.linear import Linear

_EPS = 1e-6


def content_weights(keys: torch.Tensor, strength: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """softmax over rows of strength * cosine(key, row). keys (..., K, W), strength (..., K), memory
    (..., N, W) with matching leading dims -> (..., K, N)."""
    sim = F.normalize(keys, dim=-1, eps=_EPS) @ F.normalize(memory, dim=-1, eps=_EPS).transpose(-1, -2)
    return torch.softmax(strength.unsqueeze(-1) * sim, dim=-1)


def _allocation_sorted(sorted_usage: torch.Tensor) -> torch.Tensor:
    """a[j] = (1 - u[j]) * prod_{i<j} u[i] for usage already sorted ascending (and >= eps). The product is
    exp(cumsum(log)): unlike cumprod's backward, this never checks for zeros on the host (a GPU sync)."""
    before = F.pad(sorted_usage[..., :-1].log().cumsum(-1), (1, 0)).exp()
    return (1.0 - sorted_usage) * before


def allocation_weights(usage: torch.Tensor) -> torch.Tensor:
    """DNC allocation: a[phi_j] = (1 - u[phi_j]) * prod_{i<j} u[phi_i], phi = rows by ascending usage."""
    usage = _EPS + (1.0 - _EPS) * usage
    sorted_usage, order = torch.sort(usage, dim=-1, stable=True)  # ties: lowest index first, on every device
    return torch.zeros_like(usage).scatter(-1, order, _allocation_sorted(sorted_usage))


def multi_allocation_weights(usage: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """DNC allocation for H write heads at once: usage (..., N), gates (..., H) -> (..., H, N).

    Head h allocates from the usage that the heads before it leave, u <- u + (1 - u) * gate_h * a_h (the
    DNC's sequential multi-head allocation), in the row order of one sort of the incoming usage, so the
    heads share one sort instead of one each. Head 0 gets exactly ``allocation_weights(usage)``; with open
    gates the heads take different free rows.
    """
    usage = _EPS + (1.0 - _EPS) * usage
    sorted_usage, order = torch.sort(usage, dim=-1, stable=True)  # ties: lowest index first, on every device
    allocations = []
    for h in range(gates.shape[-1]):
        alloc = _allocation_sorted(sorted_usage)
        allocations.append(alloc)
        if h + 1 < gates.shape[-1]:
            sorted_usage = sorted_usage + (1.0 - sorted_usage) * gates[..., h, None] * alloc
    stacked = torch.stack(allocations, dim=-2)
    return torch.zeros_like(stacked).scatter(-1, order.unsqueeze(-2).expand_as(stacked), stacked)


class ExternalMemory(nn.Module):
    """Slot memory read by every token and written once per chunk; output (B, T, D)."""

    def __init__(
        self, d_model: int, slots: int, width: int, read_heads: int, write_heads: int, chunk: int
    ) -> None:
        super().__init__()
        self.slots, self.width, self.chunk = slots, width, chunk
        self.read_heads, self.write_heads = read_heads, write_heads
        self.read = Linear(d_model, read_heads * (width + 1))  # key and strength per read head
        self.read_out = Linear(read_heads * width, d_model, bias=False)
        self.pool = Linear(d_model, write_heads + read_heads)  # chunk pooling scores: write, free heads
        self.write = Linear(d_model, 3 * width + 3)  # key, value, erase, strength, write and alloc gates
        self.free = Linear(d_model, width + 2)  # key, strength, free gate
        self.memory_init = nn.Parameter(torch.randn(slots, width) * 0.5)

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
        self,
        x: torch.Tensor,
        state: dict[str, Any] | None = None,
        return_state: bool = True,
        inspect: bool = False,
    ) -> MemoryOutput:
        """Reads for every token of ``x`` (B, T, D) and one write per completed chunk. The gate metrics
        (``alloc_gate``, ``write_gate``) come only from calls that write."""
        b, t, _ = x.shape
        if state is None:  # a fresh sequence starts from the learned memory (with gradient)
            state = self._fresh(self.memory_init.float().expand(b, -1, -1), b, x.device)
        xf, n_pending = prepend_pending(x, state["pending"])
        n_full = xf.shape[1] // self.chunk
        memory, usage = state["memory"].float(), state["usage"].float()
        read_params = self.read(xf)  # per-token projections, chunk pooling and reads follow the autocast
        starts: list[torch.Tensor] = []
        stats: dict[str, torch.Tensor] = {}
        addressing: dict[str, InspectionMap] | None = {} if inspect else None
        if n_full:
            pooled = self._pool(xf[:, : n_full * self.chunk])
            with torch.autocast(device_type=x.device.type, enabled=False):  # the memory itself: float32
                written = self._write_chunks(pooled.float(), memory, usage, inspect)
            starts, memory, usage, stats, writes = written
            if addressing is not None:
                rows = "write (one per chunk)"
                addressing["write_weights"] = InspectionMap(writes, rows, "slot", "write head")
        reads, stats["read_entropy"], weights = self._read(read_params, [*starts, memory], inspect)
        reads = reads[:, n_pending : n_pending + t]
        new_state = {"memory": memory, "usage": usage, "pending": xf[:, n_full * self.chunk :]}
        out = self.read_out(reads)
        stats["usage_mean"] = usage.detach().mean()
        stats["slots_used"] = (usage.detach() > 0.5).float().mean()
        snapshot = None
        if addressing is not None:
            weights = weights[:, n_pending : n_pending + t].transpose(1, 2)  # (B, R, T, N)
            addressing["read_weights"] = InspectionMap(weights, "token", "slot", "read head")
            snapshot = {
                "slots": InspectionMap(memory.detach().float()[:, None], "slot", "slot channel"),
                "usage": InspectionMap(usage.detach().float()[:, None, None], "", "slot"),
            }
        return MemoryOutput(out, new_state if return_state else None, stats, addressing, snapshot)

    def _pool(self, xf: torch.Tensor) -> torch.Tensor:
        """Attention pooling of each complete chunk: (B, n*C, D) -> (B, n, write + free heads, D)."""
        chunks = xf.view(xf.shape[0], -1, self.chunk, xf.shape[-1])  # (B, n, C, D)
        scores = torch.softmax(self.pool(chunks), dim=2)
        return torch.einsum("bncj,bncd->bnjd", scores, chunks)

    def _write_chunks(
        self, pooled: torch.Tensor, memory: torch.Tensor, usage: torch.Tensor, inspect: bool = False
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
        """Apply one write (all heads at once) per complete chunk from the pooled chunks (B, n, H + R, D);
        returns the memory at each chunk's start, the final memory and usage, gate statistics, and with
        ``inspect`` the write weights (B, H, n, N), detached (else None)."""
        w_key, w_val, erase, w_rest = self.write(pooled[:, :, : self.write_heads]).split(
            [self.width, self.width, self.width, 3], dim=-1
        )
        erase = torch.sigmoid(erase)
        write_gate, alloc_gate = torch.sigmoid(w_rest[..., 1]), torch.sigmoid(w_rest[..., 2])
        f_key, f_rest = self.free(pooled[:, :, self.write_heads :]).split([self.width, 2], dim=-1)
        free_gate = torch.sigmoid(f_rest[..., 1])
        # Free and write heads address the same chunk-start memory: one content lookup for both.
        keys = torch.cat((f_key, w_key), dim=2)  # (B, n, R + H, W)
        strengths = 1.0 + F.softplus(torch.cat((f_rest[..., 0], w_rest[..., 0]), dim=2))
        alloc_strength = write_gate * alloc_gate  # how strongly each head's allocation uses up rows
        r = self.read_heads
        chunk_memories, writes = [], []
        for c in range(pooled.shape[1]):
            chunk_memories.append(memory)
            content = content_weights(keys[:, c], strengths[:, c], memory)  # (B, R + H, N)
            retention = (1.0 - free_gate[:, c, :, None] * content[:, :r]).clamp_min(_EPS).log().sum(1).exp()
            usage = usage * retention  # prod over free heads, without prod's host-syncing backward
            ga = alloc_gate[:, c, :, None]
            alloc = multi_allocation_weights(usage, alloc_strength[:, c])
            w = write_gate[:, c, :, None] * (ga * alloc + (1.0 - ga) * content[:, r:])  # (B, H, N)
            kept = 1.0 - w[:, 0, :, None] * erase[:, c, 0, None, :]
            unused = 1.0 - w[:, 0]
            for j in range(1, self.write_heads):  # products over heads, unrolled (no prod backward sync)
                kept = kept * (1.0 - w[:, j, :, None] * erase[:, c, j, None, :])
                unused = unused * (1.0 - w[:, j])
            memory = memory * kept + (w[..., None] * w_val[:, c, :, None, :]).sum(1)
            usage = 1.0 - (1.0 - usage) * unused
            if inspect:
                writes.append(w.detach().float())
        stats = {"alloc_gate": alloc_gate.detach().mean(), "write_gate": write_gate.detach().mean()}
        return chunk_memories, memory, usage, stats, torch.stack(writes, dim=2) if inspect else None

    def _read(
        self, read_params: torch.Tensor, memories: list[torch.Tensor], inspect: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Every token reads the memory as it stood at the start of its chunk (``memories[c]``);
        ``read_params`` (B, L, R * (W + 1)) are the tokens' read keys and strengths. -> reads (B, L, R * W),
        the mean entropy of the read weights and with ``inspect`` those weights (B, L, R, N), detached."""
        b, length, _ = read_params.shape
        chunks = pad_to_chunks(read_params, self.chunk)  # (B, n_read, C, R * (W + 1))
        n_read = chunks.shape[1]
        stacked = torch.stack(memories[:n_read], dim=1)  # (B, n_read, N, W)
        keys, strength = chunks.view(b, n_read, self.chunk, self.read_heads, self.width + 1).split(
            [self.width, 1], dim=-1
        )
        weights = content_weights(
            keys.flatten(2, 3), 1.0 + F.softplus(strength.flatten(2, 4).float()), stacked
        )  # (B, n_read, C*R, N)
        reads = (weights @ stacked).view(b, n_read * self.chunk, self.read_heads * self.width)
        probs = weights.detach().float().clamp_min(1e-12)
        entropy = -(probs * probs.log()).sum(-1).mean()
        per_token = None
        if inspect:
            per_token = weights.detach().float().view(b, n_read * self.chunk, self.read_heads, -1)[:, :length]
        return reads[:, :length], entropy, per_token
