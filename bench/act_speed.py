"""ACT forward speed: halted tokens skip their remaining passes, so forward time falls with mean ponder steps.

Two tables, on the Cognate backbone (``preset=cognate``: width 320, 8 blocks, Titans memory in each,
recursion 3 x 2 micro-steps):

- ``sweep``: the halting head forced to one probability for every token, chosen so that all tokens halt
  after 1, 2 or 3 refinement steps, then random per-token halting weights (tokens halt at different
  steps, so later passes run on a gathered subset); inference forward time with ``act_skip`` on (halted
  tokens stop) and off (the old schedule: every pass for every token, halting only reweights).
- ``variants``: each Cognate variant (reasoning, memory, speed) built from its preset file, trained
  ``--train-steps`` next-byte steps on the embedded corpus with its own threshold, ponder weight, halting
  start and optimiser settings (same seed, so the same initial weights, and the same batches), then on the
  same held-out windows (same batch, same length, so the same tokens): mean ponder steps, the share of
  (token, pass) pairs computed by the model's count (``computed``) and by the rows that really went through
  the blocks' feed-forward, gather padding included (``rows_share``), bits per byte and forward time.

Timing: every configuration (a halting setting, or a variant) is timed once per round, the order reversed
every other round, ``--warmup`` untimed rounds then ``--repeats`` timed ones (``bench.interleaved``), so a
change in the load of a shared machine falls on all of them alike. Tables give the median forward time and
its interquartile range; the speed / reasoning ratio is taken round by round (paired) and printed with
the rounds where speed was faster and a sign test: "measurably faster" means a median ratio below 1 with
p <= 0.05 (10 of 10 rounds: p = 0.001; 9 of 10: 0.011).

    python -m bench.act_speed --device cuda --train-steps 300                      # ~3 minutes on an H200
    python -m bench.act_speed --device cpu --d-model 40 --n-layers 2 --n-heads 2 --seq-len 64 \
        --batch 4 --train-steps 3 --repeats 2 --no-record                          # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from agents.backbones import BackboneConfig, build_backbone
from agents.training.supervised import SupervisedConfig, SupervisedTrainer
from bench.harness import Benchmark, cuda_sync_for
from bench.interleaved import Interleaved, PairedRatio, paired_ratio, time_interleaved
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


class FeedForwardRows:
    """Counts the token rows (gather padding included) that pass through the blocks' feed-forward while
    active: the per-token work ACT skipping saves, read from what actually ran rather than from the
    model's own ``act/computed_fraction``. ``share(tokens)``: those rows over the dense schedule's (every
    token through every block of every pass). The Titans memory still reads every position in each pass
    that runs, so time can fall by less than this share."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.rows = model, 0
        self._hooks: list[Any] = []

    def __enter__(self) -> FeedForwardRows:
        def count(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
            self.rows += inputs[0].shape[:-1].numel()

        self._hooks = [block.ffn.register_forward_hook(count) for block in self.model.blocks]
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks:
            hook.remove()

    def share(self, tokens: torch.Tensor) -> float:
        """The rows counted over one dense forward's on ``tokens``."""
        return self.rows / (tokens.numel() * self.model.passes * len(self.model.blocks))


def inference(model: torch.nn.Module, tokens: torch.Tensor) -> Callable[[], None]:
    """One inference forward of ``model`` on ``tokens`` (bf16 on CUDA), as a call to time."""
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if tokens.is_cuda else contextlib.nullcontext()

    def run() -> None:
        with torch.no_grad(), autocast:
            model(tokens, return_state=False)

    return run


def work_of(model: torch.nn.Module, run: Callable[[], None], tokens: torch.Tensor) -> dict[str, float]:
    """One forward's ACT metrics and the feed-forward rows it really computed (``rows_share``)."""
    with FeedForwardRows(model) as rows:
        run()
    metrics = model.metrics()
    return {
        "steps_mean": float(metrics["act/steps_mean"]),
        "computed": float(metrics.get("act/computed_fraction", 1.0)),
        "rows_share": rows.share(tokens),
    }


def timing_columns(timings: Interleaved, label: str, tokens: torch.Tensor) -> dict[str, Any]:
    """Median forward milliseconds, their interquartile range and tokens per second of one label."""
    q1, q3 = timings.quartiles(label)
    median = timings.median(label)
    return {
        "forward_ms": 1e3 * median,
        "forward_iqr_ms": f"{1e3 * q1:.4g}-{1e3 * q3:.4g}",
        "tokens_per_s": tokens.numel() / median,
    }


def sweep(args: argparse.Namespace, device: torch.device, tokens: torch.Tensor) -> Benchmark:
    """Forward time of one model under forced halting settings, ``act_skip`` on and off, every setting
    timed once per round in alternating order (``bench.interleaved``), so load drift falls on all alike."""
    bench = Benchmark("ACT forward time against mean ponder steps (cognate backbone)", device)
    torch.manual_seed(args.seed)
    model = build_backbone(variant_config("cognate", args)).to(device).eval()
    settings = [(f"all halt after {k}", lambda k=k: uniform_halting(model, k)) for k in (1, 2, 3)]
    settings += [
        (f"spread, bias {b:+g}", lambda b=b: spread_halting(model, b, args.seed)) for b in (1, 0, -1)
    ]
    prepare: dict[str, Callable[[], None]] = {}
    for label, set_halting in settings:
        for skip in (True, False):

            def switch(set_halting: Callable[[], None] = set_halting, skip: bool = skip) -> None:
                set_halting()
                model.cfg.act_skip = skip

            prepare[f"{label}|{skip}"] = switch
    run = inference(model, tokens)
    work = {}
    for key, switch in prepare.items():
        switch()
        work[key] = work_of(model, run, tokens)
    calls = dict.fromkeys(prepare, run)
    timings = time_interleaved(calls, args.repeats, args.warmup, cuda_sync_for(device), prepare)
    for label, _ in settings:
        for skip in (True, False):
            key = f"{label}|{skip}"
            bench.add(halting=label, act_skip=skip, **work[key], **timing_columns(timings, key, tokens))
        versus = paired_ratio(timings, f"{label}|True", f"{label}|False")
        bench.rows[-2]["skip_on_over_off"] = versus.median
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


@dataclass(frozen=True)
class VariantsResult:
    """The variants' table and their interleaved forward timings (for paired ratios between them)."""

    bench: Benchmark
    timings: Interleaved

    def ratio(self, a: str = "speed", b: str = "reasoning") -> PairedRatio:
        return paired_ratio(self.timings, a, b)


def variants(args: argparse.Namespace, device: torch.device, held_out: torch.Tensor) -> VariantsResult:
    """Train each variant (same initial weights, same batches), then on the same held-out windows: its ACT
    steps, the work it really computed and bits per byte; then every variant's inference forward timed
    once per round, in alternating order, ``--repeats`` rounds after ``--warmup`` (``bench.interleaved``)."""
    bench = Benchmark(
        f"Cognate variants after {args.train_steps} training steps: ACT steps and speed", device
    )
    tokens, targets = held_out[:, :-1], held_out[:, 1:]
    models, runs, rows = {}, {}, {}
    for name in VARIANTS:
        short = name.removeprefix("cognate_")
        torch.manual_seed(args.seed)
        model = build_backbone(variant_config(name, args)).to(device)
        train_s = train_variant(model, args, device, name) if args.train_steps else 0.0
        models[short], runs[short] = model.eval(), inference(model, tokens)
        with torch.no_grad():
            logits = model(tokens, return_state=False).logits.float()
        bits = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)) / math.log(2)
        rows[short] = {
            "variant": short,
            "threshold": model.cfg.act_threshold,
            "ponder_weight": model.cfg.ponder_weight,
            "train_s": train_s,
            **work_of(model, runs[short], tokens),
            "bits_per_byte": float(bits),
        }
    timings = time_interleaved(runs, args.repeats, args.warmup, cuda_sync_for(device))
    for short, row in rows.items():
        columns = timing_columns(timings, short, tokens)
        bench.add(**row, **columns, ms_per_step=columns["forward_ms"] / row["steps_mean"])
    return VariantsResult(bench, timings)


def ratio_line(ratio: PairedRatio, a: str = "speed", b: str = "reasoning") -> str:
    """The paired ratio in one sentence, with the verdict (median below 1 and sign test p <= 0.05)."""
    verdict = "measurably faster" if ratio.measurably_faster() else "not measurably faster"
    return (
        f"{a} / {b} forward time, paired by round: median {ratio.median:.3f} (range {ratio.low:.3f}-"
        f"{ratio.high:.3f}), {a} faster in {ratio.faster} of {ratio.rounds} rounds, sign test p = "
        f"{ratio.p_value:.2g}: {a} is {verdict}"
    )


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
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    held_out = byte_windows(
        default_corpus().text("validation"),
        args.batch,
        args.seq_len,
        torch.Generator().manual_seed(args.seed + 1),
    ).to(device)
    if not args.skip_sweep:
        sweep(args, device, held_out[:, :-1]).report(record=not args.no_record)
    result = variants(args, device, held_out)
    result.bench.report(record=not args.no_record)
    print(ratio_line(result.ratio()))


if __name__ == "__main__":
    main()
