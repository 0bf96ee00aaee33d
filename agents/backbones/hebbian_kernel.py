"""Fused Triton kernels for the Hebbian chunked recurrence on the GPU: the forward and its backward.

The maths is ``hebbian.hebbian_chunked``'s, with q and k L2-normalised: per chunk with start memory S and
in-chunk cumulative log-decay g,
    o_i = sum_{j<=i} exp(g_i - g_j) (q_i . k_j) v_j + exp(g_i) q_i S,
    S'  = exp(g_C) S + U,   U = sum_j exp(g_C - g_j) k_j v_j^T.
The forward runs three kernels: every chunk's write U in parallel; an elementwise carry over the chunks
that turns the writes into chunk-start memories; every chunk's outputs in parallel. The backward mirrors
it with the gradient dS carried in reverse, then one parallel kernel for dq, dk, dv and dg per chunk.
The kernels read the projection's (B, T, 3, H, D) output as it is (bf16 under autocast), normalise q and
k in registers and write the gradient in that layout, so no float32 copies, normalisations or permutes
of q, k, v go through global memory, nor do the (C x C) decay matrices. Every value is float32; the
matmuls use TF32 unless ``torch.get_float32_matmul_precision()`` is "highest", the same rule torch's own
float32 matmuls follow.

The kernels are registered as ``torch.library.triton_op``s with an autograd formula, so ``torch.compile``
traces them without a graph break. Without Triton or CUDA, ``fused_available`` is False and the callers
use the torch form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the torch form is used
    triton = None


def fused_available(qkv: torch.Tensor, chunk: int) -> bool:
    """Whether the fused kernels can run this call: Triton present, a CUDA tensor, a power-of-two chunk of
    16..64 positions and a head width of at most 128."""
    return triton is not None and qkv.is_cuda and chunk in (16, 32, 64) and qkv.shape[-1] <= 128


def hebbian_fused(
    qkv: torch.Tensor, log_decay: torch.Tensor, memory: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``hebbian_chunked(normalize(q), normalize(k), v, log_decay, memory, chunk)`` through the fused kernels,
    with q, k, v = ``qkv`` (B, T, 3, H, D) (any float dtype) and the same results: outputs (B, H, T, D) and
    the final memory (B, H, D, D), both float32."""
    t = qkv.shape[1]
    pad = (-t) % chunk
    if pad:  # zero keys and zero log-decay after the end leave outputs and the final memory unchanged
        qkv = F.pad(qkv, (0, 0, 0, 0, 0, 0, 0, pad))
        log_decay = F.pad(log_decay, (0, pad))
    g = log_decay.unflatten(-1, (-1, chunk)).cumsum(-1).flatten(-2)  # in-chunk cumulative log-decay
    out, new_memory = torch.ops.mindgym.hebbian_chunk_forward(qkv, g, memory, chunk)[:2]
    return out[:, :t].transpose(1, 2), new_memory


def _precision() -> str:
    return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"


if triton is not None:
    _NORM_EPS = tl.constexpr(1e-12)  # F.normalize's; a plain global is not visible inside @triton.jit

    @triton.jit
    def _tile(ptr, stride_t, rows, cols, D):
        """A float32 (len(rows), len(cols)) tile of a (T, D) matrix with unit column stride; columns >= D
        read 0."""
        x = tl.load(ptr + rows[:, None] * stride_t + cols[None, :], mask=cols[None, :] < D, other=0.0)
        return x.to(tl.float32)

    @triton.jit
    def _qkv_tiles(base, stride_t, stride_s, rows, cols, D):
        """A chunk's float32 q, k, v tiles from the projection's (T, 3, D) rows of one head."""
        q, k = _tile(base, stride_t, rows, cols, D), _tile(base + stride_s, stride_t, rows, cols, D)
        return q, k, _tile(base + 2 * stride_s, stride_t, rows, cols, D)

    @triton.jit
    def _row_norm(x):
        return tl.sqrt(tl.sum(x * x, axis=1))

    @triton.jit
    def _inverse_norm(x):
        """1 / max(||row||, eps) of each row of ``x``, as F.normalize divides."""
        return 1.0 / tl.maximum(_row_norm(x), _NORM_EPS)

    @triton.jit
    def _intra_chunk_decay(g, rows):
        """exp(g_i - g_j) for j <= i, else 0: the decay from position j to i inside a chunk."""
        causal = rows[:, None] >= rows[None, :]
        return tl.exp(tl.where(causal, g[:, None] - g[None, :], float("-inf")))

    @triton.jit
    def _square(ptr, cols, D):
        """A (BD, BD) tile of a (D, D) memory; rows and columns >= D read 0."""
        mask = (cols[:, None] < D) & (cols[None, :] < D)
        return tl.load(ptr + cols[:, None] * D + cols[None, :], mask=mask, other=0.0)

    @triton.jit
    def _write_kernel(
        A, B, G, WRITES,
        sab, sat, sah, sbb, sbt, sbh,
        H, T, D, n_chunks,
        C: tl.constexpr, BD: tl.constexpr, REVERSE: tl.constexpr, PRECISION: tl.constexpr,
    ):  # fmt: skip
        """One chunk's contribution to the carried state, (normalize(a) * w)^T b: forward (a = k, b = v,
        w = exp(g_C - g)) the memory's write; reverse (a = q, b = d out, w = exp(g)) the gradient that the
        chunk's reads send back to its start memory."""
        c, pid = tl.program_id(0), tl.program_id(1)
        bi, hi, t0 = pid // H, pid % H, c * C
        rows, cols = tl.arange(0, C), tl.arange(0, BD)
        a = _tile(A + bi * sab + hi * sah + t0 * sat, sat, rows, cols, D)
        b = _tile(B + bi * sbb + hi * sbh + t0 * sbt, sbt, rows, cols, D)
        g = tl.load(G + pid * T + t0 + rows)
        weight = tl.exp(g) if REVERSE else tl.exp(tl.load(G + pid * T + t0 + C - 1) - g)
        a = a * (_inverse_norm(a) * weight)[:, None]
        written = tl.dot(tl.trans(a), b, input_precision=PRECISION)
        slot = WRITES + (pid * n_chunks + c) * D * D + cols[:, None] * D + cols[None, :]
        tl.store(slot, written, mask=(cols[:, None] < D) & (cols[None, :] < D))

    @triton.jit
    def _carry_kernel(
        STATES, G, INIT, FINAL, T, D, n_chunks,
        C: tl.constexpr, BLOCK: tl.constexpr, REVERSE: tl.constexpr,
    ):  # fmt: skip
        """state <- exp(g_C) state + written, over the chunks (in reverse for the gradient), elementwise.
        ``STATES`` holds each chunk's write on entry and, on exit, the state that chunk starts from
        (forward) or the gradient of the state it ends at (reverse)."""
        pid, pid_e = tl.program_id(0), tl.program_id(1)
        offsets = pid_e * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < D * D
        state = tl.load(INIT + pid * D * D + offsets, mask=mask, other=0.0)
        for step in range(n_chunks):
            c = n_chunks - 1 - step if REVERSE else step
            slot = STATES + (pid * n_chunks + c) * D * D + offsets
            written = tl.load(slot, mask=mask, other=0.0)
            tl.store(slot, state, mask=mask)
            state = state * tl.exp(tl.load(G + pid * T + c * C + C - 1)) + written
        tl.store(FINAL + pid * D * D + offsets, state, mask=mask)

    @triton.jit
    def _output_kernel(
        QKV, G, STARTS, OUT,
        sb, st, ss, sh, H, T, D, n_chunks,
        C: tl.constexpr, BD: tl.constexpr, PRECISION: tl.constexpr,
    ):  # fmt: skip
        """One chunk's outputs from its start memory: (q k^T * decay) v + exp(g) q S, into (B, T, H, D)."""
        c, pid = tl.program_id(0), tl.program_id(1)
        bi, hi, t0 = pid // H, pid % H, c * C
        rows, cols = tl.arange(0, C), tl.arange(0, BD)
        q, k, v = _qkv_tiles(QKV + bi * sb + hi * sh + t0 * st, st, ss, rows, cols, D)
        q, k = q * _inverse_norm(q)[:, None], k * _inverse_norm(k)[:, None]
        g = tl.load(G + pid * T + t0 + rows)
        memory = _square(STARTS + (pid * n_chunks + c) * D * D, cols, D)
        decay = _intra_chunk_decay(g, rows)
        scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * decay
        out = tl.dot(scores, v, input_precision=PRECISION)
        out += tl.dot(q * tl.exp(g)[:, None], memory, input_precision=PRECISION)
        out_ptr = OUT + ((bi * T + t0 + rows[:, None]) * H + hi) * D + cols[None, :]
        tl.store(out_ptr, out, mask=cols[None, :] < D)

    @triton.jit
    def _normalize_backward(dy, y, norm):
        """d x of y = x / max(||x||, eps) given d y, per row."""
        projection = tl.where(norm > _NORM_EPS, tl.sum(y * dy, axis=1), 0.0)
        return (dy - y * projection[:, None]) / tl.maximum(norm, _NORM_EPS)[:, None]

    @triton.jit
    def _gradient_kernel(
        QKV, G, DO, STARTS, ENDS, DQKV, DG,
        sb, st, ss, sh, sdb, sdt, sdh, H, T, D, n_chunks,
        C: tl.constexpr, BD: tl.constexpr, PRECISION: tl.constexpr,
    ):  # fmt: skip
        """One chunk's gradients of q, k, v (through the normalisation, into (B, T, 3, H, D)) and of the
        cumulative log-decay, from its start memory S and the gradient dS of its end memory."""
        c, pid = tl.program_id(0), tl.program_id(1)
        bi, hi, t0 = pid // H, pid % H, c * C
        rows, cols = tl.arange(0, C), tl.arange(0, BD)
        q_raw, k_raw, v = _qkv_tiles(QKV + bi * sb + hi * sh + t0 * st, st, ss, rows, cols, D)
        do = _tile(DO + bi * sdb + hi * sdh + t0 * sdt, sdt, rows, cols, D)
        q_norm, k_norm = _row_norm(q_raw), _row_norm(k_raw)
        q, k = q_raw / tl.maximum(q_norm, _NORM_EPS)[:, None], k_raw / tl.maximum(k_norm, _NORM_EPS)[:, None]
        g = tl.load(G + pid * T + t0 + rows)
        g_last = tl.load(G + pid * T + t0 + C - 1)
        memory = _square(STARTS + (pid * n_chunks + c) * D * D, cols, D)
        d_memory = _square(ENDS + (pid * n_chunks + c) * D * D, cols, D)
        decay = _intra_chunk_decay(g, rows)
        to_end = tl.exp(g_last - g)[:, None]
        d_scores = tl.dot(do, tl.trans(v), input_precision=PRECISION) * decay
        scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * decay
        dq = tl.dot(d_scores, k, input_precision=PRECISION)
        dq += tl.exp(g)[:, None] * tl.dot(do, tl.trans(memory), input_precision=PRECISION)
        dk_write = to_end * tl.dot(v, tl.trans(d_memory), input_precision=PRECISION)
        dk = tl.dot(tl.trans(d_scores), q, input_precision=PRECISION) + dk_write
        dv = tl.dot(tl.trans(scores), do, input_precision=PRECISION)
        dv += to_end * tl.dot(k, d_memory, input_precision=PRECISION)
        # dL/dg_i = q_i.dq_i - k_i.dk_i, plus, at the chunk's last position (g_C scales the memory carried
        # on and every write), exp(g_C) <S, dS> + sum_j k_j . (its write's share of dk_j).
        dg = tl.sum(q * dq, axis=1) - tl.sum(k * dk, axis=1)
        carried = tl.exp(g_last) * tl.sum(tl.sum(memory * d_memory, axis=1), axis=0)
        dg += tl.where(rows == C - 1, carried + tl.sum(tl.sum(k * dk_write, axis=1), axis=0), 0.0)
        tl.store(DG + pid * T + t0 + rows, dg)
        out = DQKV + (((bi * T + t0 + rows[:, None]) * 3) * H + hi) * D + cols[None, :]
        mask = cols[None, :] < D
        tl.store(out, _normalize_backward(dq, q, q_norm), mask=mask)
        tl.store(out + H * D, _normalize_backward(dk, k, k_norm), mask=mask)
        tl.store(out + 2 * H * D, dv, mask=mask)

    _CARRY_BLOCK = 1024  # state entries per carry program

    def _block_width(d: int) -> int:
        return max(16, triton.next_power_of_2(d))

    def _unit_last(z: torch.Tensor) -> torch.Tensor:
        """``z`` itself when its last dim is contiguous (what the kernels index), else a contiguous copy."""
        return z if z.stride(-1) == 1 else z.contiguous()

    def _carried_states(
        a: torch.Tensor, b: torch.Tensor, g: torch.Tensor, init: torch.Tensor, chunk: int, reverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-chunk states (B, H, n, D, D) and the final state of the carry over ``a``, ``b`` (B, T, H, D)
        views (see _write_kernel and _carry_kernel)."""
        batch, t, heads, d = a.shape
        n = t // chunk
        states = torch.empty(batch, heads, n, d, d, device=a.device, dtype=torch.float32)
        torch.library.wrap_triton(_write_kernel)[(n, batch * heads)](
            a, b, g, states, *a.stride()[:3], *b.stride()[:3], heads, t, d, n,
            C=chunk, BD=_block_width(d), REVERSE=reverse, PRECISION=_precision(), num_warps=4,
        )  # fmt: skip
        final = torch.empty_like(init)
        torch.library.wrap_triton(_carry_kernel)[(batch * heads, triton.cdiv(d * d, _CARRY_BLOCK))](
            states, g, init, final, t, d, n, C=chunk, BLOCK=_CARRY_BLOCK, REVERSE=reverse, num_warps=4
        )
        return states, final

    @torch.library.triton_op("mindgym::hebbian_chunk_forward", mutates_args=())
    def hebbian_chunk_forward(
        qkv: torch.Tensor, g: torch.Tensor, memory: torch.Tensor, chunk: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Outputs (B, T, H, D) float32, final memory (B, H, D, D) and chunk-start memories (B, H, n, D, D)
        of ``qkv`` (B, T, 3, H, D), in-chunk cumulative log-decay ``g`` (B, H, T), T a multiple of chunk."""
        qkv = _unit_last(qkv)
        b, t, _, h, d = qkv.shape
        g = g.contiguous()
        starts, final = _carried_states(qkv[:, :, 1], qkv[:, :, 2], g, memory.contiguous(), chunk, False)
        out = torch.empty(b, t, h, d, device=qkv.device, dtype=torch.float32)
        torch.library.wrap_triton(_output_kernel)[(t // chunk, b * h)](
            qkv, g, starts, out, *qkv.stride()[:4], h, t, d, t // chunk,
            C=chunk, BD=_block_width(d), PRECISION=_precision(), num_warps=4,
        )  # fmt: skip
        return out, final, starts

    @torch.library.triton_op("mindgym::hebbian_chunk_backward", mutates_args=())
    def hebbian_chunk_backward(
        qkv: torch.Tensor,
        g: torch.Tensor,
        starts: torch.Tensor,
        d_out: torch.Tensor,
        d_final: torch.Tensor,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gradients (d qkv, d g, d memory) of ``hebbian_chunk_forward`` given d out and d final memory."""
        qkv, d_out = _unit_last(qkv), _unit_last(d_out)
        b, t, _, h, d = qkv.shape
        g = g.contiguous()
        ends, d_memory = _carried_states(qkv[:, :, 0], d_out, g, d_final.contiguous(), chunk, True)
        d_qkv = torch.empty(b, t, 3, h, d, device=qkv.device, dtype=qkv.dtype)
        dg = torch.empty_like(g)
        torch.library.wrap_triton(_gradient_kernel)[(t // chunk, b * h)](
            qkv, g, d_out, starts, ends, d_qkv, dg,
            *qkv.stride()[:4], *d_out.stride()[:3], h, t, d, t // chunk,
            C=chunk, BD=_block_width(d), PRECISION=_precision(), num_warps=4,
        )  # fmt: skip
        return d_qkv, dg, d_memory

    def _setup_context(ctx, inputs, output) -> None:
        qkv, g, _, chunk = inputs
        ctx.save_for_backward(qkv, g, output[2])
        ctx.chunk = chunk

    def _backward(ctx, d_out, d_final, _d_starts):
        qkv, g, starts = ctx.saved_tensors
        b, t, _, h, d = qkv.shape
        if d_out is None:
            d_out = qkv.new_zeros(b, t, h, d, dtype=torch.float32)
        if d_final is None:
            d_final = qkv.new_zeros(b, h, d, d, dtype=torch.float32)
        d_qkv, dg, d_memory = hebbian_chunk_backward(qkv, g, starts, d_out, d_final, ctx.chunk)
        return d_qkv, dg, d_memory, None

    hebbian_chunk_forward.register_autograd(_backward, setup_context=_setup_context)
