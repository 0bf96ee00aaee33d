"""Backbone training throughput: tokens/s, model FLOPs utilisation and peak memory per backbone.

One optimiser step (forward, next-token loss, backward, fused AdamW) on random tokens, bf16 autocast and
torch.compile, TF32 for the float32 memory recurrences. The transformer compiles forward + loss as one
graph; the memory backbones compile each block (identical blocks share one graph) and the loss
separately, since their chunk loops make whole-model graphs slow to compile. Every memory backbone is
resized with ``match_parameters`` to the plain transformer's parameter count (depth kept, width shrunk,
head width a multiple of 8), so the comparison is at equal size.

    python -m bench.backbone_throughput --device cuda                    # ~25M params, seq 1K and 4K
    python -m bench.backbone_throughput --device cpu --d-model 128 --n-layers 2 --n-heads 2 \
        --seq-lens 128 --tokens-per-step 512 --compile none --no-record # a quick smoke run

``mfu`` counts 6 * parameters + 12 * n_layers * seq_len * d_model FLOPs per token (the PaLM / nanoGPT
model-FLOPs convention, attention over the full T x T); ``mfu_causal`` counts only the causal half of the
attention that flash kernels actually compute. A memory module's own recurrence FLOPs beyond its
parameter matmuls are not counted, so compare memory backbones by tokens/s against the transformer.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from agents.backbones import BackboneConfig, build_backbone
from agents.backbones.parity import count_parameters, match_parameters
from agents.training.optimizers import build_optimizer
from agents.training.speed import compile_plan, flops_per_token, peak_flops
from bench.harness import Benchmark, cuda_sync_for, time_call
from foundation.device import resolve_device

BACKBONES = ("transformer", "hebbian", "external", "titans")


def backbone_config(kind: str, args: argparse.Namespace, seq_len: int) -> BackboneConfig:
    """The base config of ``kind`` before parameter matching."""
    memory = None if kind == "transformer" else kind
    chunk = args.hebbian_chunk if kind == "hebbian" else args.write_chunk
    return BackboneConfig(
        vocab_size=args.vocab_size,
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        max_seq_len=seq_len,
        memory=memory,
        memory_chunk=chunk,
    )


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, T, V) logits against (B, T) targets, in float32."""
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def measure(cfg: BackboneConfig, args: argparse.Namespace, device: torch.device, seq_len: int, how: str):
    """(tokens/s, seconds to the first finished step incl. compilation, peak GiB) of training ``cfg``.
    ``how``: "loss" compiles forward + loss as one graph, "blocks" each block (identical blocks share
    one compiled graph) and the loss, "none" runs eagerly."""
    torch.manual_seed(0)
    model = build_backbone(cfg).to(device)
    mode = None if args.compile_mode == "default" else args.compile_mode
    loss_of = next_token_loss
    if how == "blocks":
        for block in model.blocks:
            block.compile(mode=mode)
        loss_of = torch.compile(next_token_loss)  # no CUDA graph: it would copy the logits into its own
    opt = build_optimizer(model, "adamw", lr=1e-4)
    batch = max(1, args.tokens_per_step // seq_len)
    tokens = torch.randint(0, cfg.vocab_size, (batch, seq_len + 1), device=device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )

    def loss_fn(batch: torch.Tensor) -> torch.Tensor:
        with autocast:
            return loss_of(model(batch[:, :-1], return_state=False).logits, batch[:, 1:])

    if how == "loss":
        loss_fn = torch.compile(loss_fn, mode=mode)

    def step() -> None:
        torch.compiler.cudagraph_mark_step_begin()  # a new training step: earlier graph outputs are dead
        loss_fn(tokens).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    sync = cuda_sync_for(device)
    start = time.perf_counter()
    step()
    if sync:
        sync()
    first_step_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timing = time_call(step, warmup=args.warmup, repeats=args.steps, sync=sync)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return batch * seq_len / timing.median, first_step_s, peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--seq-lens", nargs="+", type=int, default=[1024, 4096])
    parser.add_argument("--tokens-per-step", type=int, default=65536)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--n-layers", type=int, default=8)
    parser.add_argument("--n-heads", type=int, default=8)
    parser.add_argument("--hebbian-chunk", type=int, default=64)
    parser.add_argument(
        "--write-chunk", type=int, default=256, help="chunk of the external and Titans memory"
    )
    parser.add_argument("--compile", choices=("auto", "loss", "blocks", "none"), default="auto")
    parser.add_argument(
        "--compile-mode",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        default="reduce-overhead",
        help="torch.compile mode; reduce-overhead replays each compiled graph as a CUDA graph",
    )
    parser.add_argument("--parity-tolerance", type=float, default=0.15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak, if the GPU is not known")
    parser.add_argument("--budget-s", type=float, default=1e9, help="skip the remaining rows after this long")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to benchmarks.md")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    torch._dynamo.config.automatic_dynamic_shapes = False  # one static graph per sequence length
    torch.set_float32_matmul_precision("high")  # TF32 for the float32 memory recurrences
    peak = peak_flops(device, args.peak_tflops)
    bench = Benchmark("backbone training throughput", device=device)
    began = time.perf_counter()
    for seq_len in args.seq_lens:
        base = backbone_config("transformer", args, seq_len)
        target = count_parameters(base)
        reference = None
        for kind in args.backbones:
            row: dict[str, object] = {"backbone": kind, "seq": seq_len}
            if time.perf_counter() - began > args.budget_s:
                bench.add(**row, note="skipped: --budget-s reached")
                continue
            try:
                cfg = backbone_config(kind, args, seq_len)
                if kind != "transformer":
                    cfg = match_parameters(cfg, target, args.parity_tolerance, head_multiple=8)
                n_params = count_parameters(cfg)
                how = compile_plan(cfg, args.compile, device)
                torch._dynamo.reset()
                tokens_per_s, first_s, peak_gib = measure(cfg, args, device, seq_len, how)
            except Exception as err:  # one failing row must not lose the others
                bench.add(**row, note=f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
                print(bench.rows[-1], flush=True)
                continue
            if kind == "transformer":
                reference = tokens_per_s
            row.update(
                d_model=cfg.d_model, params_M=n_params / 1e6, chunk=cfg.memory_chunk if cfg.memory else ""
            )
            compiled = how if how == "none" else f"{how}, {args.compile_mode}"
            row.update(compile=compiled, tokens_per_s=tokens_per_s)
            if peak is not None:
                row["mfu"] = tokens_per_s * flops_per_token(cfg, n_params, seq_len, False) / peak
                row["mfu_causal"] = tokens_per_s * flops_per_token(cfg, n_params, seq_len, True) / peak
            row["vs_transformer"] = tokens_per_s / reference if reference else float("nan")
            row.update(peak_GiB=peak_gib, first_step_s=first_s)
            bench.add(**row)
            print(row, flush=True)
    bench.report(record=not args.no_record)


if __name__ == "__main__":
    main()
