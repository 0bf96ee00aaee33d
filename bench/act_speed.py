"""ACT forward speed: halted tokens skip their remaining passes, so forward time falls with mean ponder steps.

Two tables, on the Cognate backbone (``preset=cognate``: width 320, 8 blocks, Titans memory in each,
recursion 3 x 2 micro-steps):

- ``sweep``: the halting head forced to one probability for every token, chosen so that all tokens halt
  after 1, 2 or 3 refinement steps, then random per-token halting weights (tokens halt at different
  steps, so later passes run on a gathered subset); inference forward time with ``act_skip`` on (halted
  tokens stop) and off (the old schedule: every pass for every token, halting only reweights).
- ``variants``: each Cognate variant (reasoning, memory, speed) built from its preset file, trained
  ``--train-steps`` next-byte steps on the embedded corpus with its own threshold, ponder weight, halting
  start and optimiser settings (same seed, same batches), then on held-out windows: mean ponder steps, the
  share of (token, pass) pairs computed, bits per byte and forward time.

    python -m bench.act_speed --device cuda --train-steps 300                      # ~3 minutes on an H200
    python -m bench.act_speed --device cpu --d-model 40 --n-layers 2 --n-heads 2 --seq-len 64 \
        --batch 4 --train-steps 3 --repeats 2 --no-record                          # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from agents.backbones import BackboneConfig, build_backbone
from agents.training.supervised import SupervisedConfig, SupervisedTrainer
from bench.harness import Benchmark, cuda_sync_for, time_call
from envs.common.task import SupervisedBatch
from envs.generation.corpus import default_corpus
from foundation.device import resolve_device

PRESETS = Path(__file__).resolve().parent.parent / "runners" / "conf" / "preset"
VARIANTS = ("cognate_reasoning", "cognate_memory", "cognate_speed")


def preset_section(name: str, section: str) -> dict:
    """A preset file's ``section`` merged over the presets it lists in ``defaults`` (same folder)."""
    raw = OmegaConf.load(PRESETS / f"{name}.yaml")
    merged = OmegaConf.create()
    for parent in raw.get("defaults", []):
        if isinstance(parent, str) and (PRESETS / f"{parent}.yaml").exists():
            merged = OmegaConf.merge(merged, {section: preset_section(parent, section)})
    merged = OmegaConf.merge(merged, {section: raw.get(section, {})})
    return OmegaConf.to_container(merged[section], resolve=False)


def variant_config(name: str, args: argparse.Namespace) -> BackboneConfig:
    """The preset's backbone for bytes, with the command line's size overrides. Settings that follow the
    runner's hardware group (``${hardware.recompute_activations}``) keep BackboneConfig's defaults: this
    bench is not composed with one, and ``--device`` picks where it runs."""
    fields = preset_section(name, "backbone")
    fields = {k: v for k, v in fields.items() if not (isinstance(v, str) and v.startswith("${hardware."))}
    fields.update(vocab_size=256, max_seq_len=max(args.seq_len, 64))
    for key in ("d_model", "n_layers", "n_heads"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    return BackboneConfig(**fields)


def byte_windows(text: str, count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random windows of ``length + 1`` bytes of ``text`` (inputs and next-byte targets)."""
    data = torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)
    starts = torch.randint(0, data.numel() - length - 1, (count,), generator=generator)
    return torch.stack([data[s : s + length + 1] for s in starts.tolist()]).long()


def uniform_halting(model: torch.nn.Module, steps: int) -> None:
    """Make every token halt after exactly ``steps`` refinement steps (weight 0, a fixed probability)."""
    threshold, n_steps = model.cfg.act_threshold, model.cfg.recursion
    prob = min(threshold / (steps - 0.5), 0.999) if steps < n_steps else 0.5 * threshold / (n_steps - 1)
    with torch.no_grad():
        model.halting.proj.weight.zero_()
        model.halting.proj.bias.fill_(math.log(prob / (1.0 - prob)))


def spread_halting(model: torch.nn.Module, bias: float, seed: int) -> None:
    """Halting probabilities that differ per token (random weights, a shared bias): tokens halt at
    different steps, so passes after the first run on a gathered subset of each row."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(model.halting.proj.weight.shape, generator=generator) * 2.0 / model.d_model**0.5
    with torch.no_grad():
        model.halting.proj.weight.copy_(weight)
        model.halting.proj.bias.fill_(bias)


def forward_timing(model, tokens: torch.Tensor, args: argparse.Namespace) -> tuple[float, dict[str, float]]:
    """Median seconds of an inference forward (bf16 on CUDA) and the metrics of that forward."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if tokens.is_cuda else contextlib.nullcontext()

    def run() -> None:
        with torch.no_grad(), autocast:
            model(tokens, return_state=False)

    timing = time_call(run, warmup=args.warmup, repeats=args.repeats, sync=cuda_sync_for(tokens.device))
    return timing.median, model.metrics()


def sweep(args: argparse.Namespace, device: torch.device, tokens: torch.Tensor) -> Benchmark:
    bench = Benchmark("ACT forward time against mean ponder steps (cognate backbone)", device)
    torch.manual_seed(args.seed)
    model = build_backbone(variant_config("cognate", args)).to(device).eval()
    settings = [(f"all halt after {k}", lambda k=k: uniform_halting(model, k)) for k in (1, 2, 3)]
    settings += [
        (f"spread, bias {b:+g}", lambda b=b: spread_halting(model, b, args.seed)) for b in (1, 0, -1)
    ]
    for label, set_halting in settings:
        set_halting()
        for skip in (True, False):
            model.cfg.act_skip = skip
            seconds, metrics = forward_timing(model, tokens, args)
            bench.add(
                halting=label,
                act_skip=skip,
                steps_mean=metrics["act/steps_mean"],
                computed=metrics.get("act/computed_fraction", 1.0),
                forward_ms=1e3 * seconds,
                tokens_per_s=tokens.numel() / seconds,
            )
    return bench


def train_variant(model, args: argparse.Namespace, device: torch.device, name: str) -> float:
    """``--train-steps`` supervised next-byte steps with the preset's optimiser; returns seconds spent."""
    preset = preset_section(name, "trainer").get("supervised", {})
    config = SupervisedConfig(
        optimizer=preset.get("optimizer", "adamw"),
        lr=float(preset.get("lr", 1e-3)),
        warmup_steps=min(int(preset.get("warmup_steps", 100)), max(args.train_steps // 10, 1)),
        bf16=device.type == "cuda",
        compile=args.compile,
        optimizer_kwargs=dict(preset.get("optimizer_kwargs", {})),
    )
    trainer = SupervisedTrainer(model, config, total_steps=args.train_steps)
    generator = torch.Generator().manual_seed(args.seed)
    text = default_corpus().text("train")
    started = time.perf_counter()
    for _ in range(args.train_steps):
        window = byte_windows(text, args.batch, args.seq_len, generator).to(device)
        tokens, targets = window[:, :-1], window[:, 1:]
        trainer.step(SupervisedBatch(tokens, targets, torch.ones_like(targets, dtype=torch.bool)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def variants(args: argparse.Namespace, device: torch.device, held_out: torch.Tensor) -> Benchmark:
    bench = Benchmark(
        f"Cognate variants after {args.train_steps} training steps: ACT steps and speed", device
    )
    tokens, targets = held_out[:, :-1], held_out[:, 1:]
    for name in VARIANTS:
        torch.manual_seed(args.seed)
        model = build_backbone(variant_config(name, args)).to(device)
        train_s = train_variant(model, args, device, name) if args.train_steps else 0.0
        model.eval()
        seconds, metrics = forward_timing(model, tokens, args)
        with torch.no_grad():
            logits = model(tokens, return_state=False).logits.float()
        bits = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)) / math.log(2)
        bench.add(
            variant=name.removeprefix("cognate_"),
            threshold=model.cfg.act_threshold,
            ponder_weight=model.cfg.ponder_weight,
            train_s=train_s,
            steps_mean=metrics["act/steps_mean"],
            computed=metrics["act/computed_fraction"],
            bits_per_byte=float(bits),
            forward_ms=1e3 * seconds,
            tokens_per_s=tokens.numel() / seconds,
        )
    return bench


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--d-model", dest="d_model", type=int, default=None, help="default: the preset's")
    parser.add_argument("--n-layers", dest="n_layers", type=int, default=None)
    parser.add_argument("--n-heads", dest="n_heads", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=300, help="0: compare the variants untrained")
    parser.add_argument("--compile", choices=("auto", "loss", "blocks", "none"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to benchmarks.md")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    held_out = byte_windows(
        default_corpus().text("validation"),
        args.batch,
        args.seq_len,
        torch.Generator().manual_seed(args.seed + 1),
    ).to(device)
    if not args.skip_sweep:
        sweep(args, device, held_out[:, :-1]).report(record=not args.no_record)
    variants(args, device, held_out).report(record=not args.no_record)


if __name__ == "__main__":
    main()
