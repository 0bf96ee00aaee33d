"""The seeds' own results beside MindGym's, in one command (issue 21): one table, one JSON file.

- **bwr_dnc**: ``preset=bwr_dnc`` trained for ``--bwr-minutes``, then copy accuracy (per symbol) and exact
  match (whole copies) at lengths 2, 10 and 32 on fresh sequences; the seed reported 37.2%, 14.1% and
  10.0% accuracy at those lengths (its difficulties 1, 5 and 10).
- **cognate**: forward time of the Cognate backbone with every token halting after 1, 2 or 3 steps and
  with per-token halting, ``act_skip`` on and off; then each variant's ACT mean steps, share of (token,
  pass) pairs computed and forward speed after ``--act-train-steps`` training steps (``bench.act_speed``);
  the seed names the speed model the fastest.
- **agiformer** (with ``--agiformer-minutes`` > 0): ``preset=agiformer`` trained that long, then needle
  exact rate at 2,899 bytes of haystack (``runners.evaluate task=needle``); the seed's check failed.

    python -m bench.seed_fidelity --device cuda --out /tmp/seed_fidelity                  # ~7 minutes, H200
    python -m bench.seed_fidelity --device cpu --out /tmp/sf --bwr-minutes 0.2 --act-train-steps 2 \
        --act-seq-len 32 --act-batch 2 --act-d-model 40 --act-n-layers 2 --episodes 8    # a smoke run

Everything else a run writes (checkpoints, TensorBoard, reports) goes under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from bench import act_speed
from bench.harness import Benchmark, device_name, runner_config
from envs.generation.corpus import default_corpus
from foundation.checkpoint import load_checkpoint
from foundation.device import resolve_device

BWR_LENGTHS = {2: 0.372, 10: 0.141, 32: 0.100}  # the seed's copy accuracy at these lengths


def train(
    runner: str, preset: str, minutes: float, device: torch.device, out: Path, extra: list[str]
) -> Path:
    """Train ``preset`` for ``minutes`` of wall clock into ``out``; returns the run folder."""
    import importlib

    from runners.app import execute

    hardware = ["hardware=gpu"] if device.type == "cuda" else [f"hardware.device={device.type}"]
    overrides = [
        f"preset={preset}",
        *hardware,
        f"trainer.max_minutes={minutes}",
        "trainer.progress_bar=false",
    ]
    cfg = runner_config(runner, [*overrides, *extra])
    module = importlib.import_module(f"runners.{runner}")
    execute(cfg, runner, module.build_experiment, run_dir=out, overrides=[*overrides, *extra])
    return out


def bwr_dnc(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    from runners.evaluate import evaluate_checkpoint

    started = time.perf_counter()
    run = train("recall", "bwr_dnc", args.bwr_minutes, device, args.out / "bwr_dnc", [])
    _, results = evaluate_checkpoint(run / "checkpoints" / "latest.pt", str(device), args.episodes)
    minutes = (time.perf_counter() - started) / 60
    rows = []
    for length, seed_accuracy in BWR_LENGTHS.items():
        name = f"len{length}-v32"
        rows.append(
            {
                "seed": "bwr_dnc",
                "measure": f"copy accuracy, length {length}",
                "seed_reported": seed_accuracy,
                "mindgym": results["accuracy"].get(name),
                "mindgym_exact": results["exact_match"].get(name),
                "minutes": minutes,
                "step": results["step"],
            }
        )
    return rows


def cognate(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    ns = argparse.Namespace(
        d_model=args.act_d_model,
        n_layers=args.act_n_layers,
        n_heads=args.act_n_heads,
        seq_len=args.act_seq_len,
        batch=args.act_batch,
        train_steps=args.act_train_steps,
        compile="none",
        seed=0,
        warmup=2,
        repeats=args.act_repeats,
    )
    held_out = act_speed.byte_windows(
        default_corpus().text("validation"),
        ns.batch,
        ns.seq_len,
        torch.Generator().manual_seed(1),
    ).to(device)
    sweep = act_speed.sweep(ns, device, held_out[:, :-1])
    rows = [
        {
            "seed": "cognate",
            "measure": f"forward, {row['halting']}, act_skip={row['act_skip']}: ACT mean steps",
            "mindgym": row["steps_mean"],
            "forward_ms": row["forward_ms"],
            "computed": row["computed"],
        }
        for row in sweep.rows
    ]
    started = time.perf_counter()
    bench = act_speed.variants(ns, device, held_out)
    minutes = (time.perf_counter() - started) / 60
    return rows + [
        {
            "seed": "cognate",
            "measure": f"cognate_{row['variant']} after {ns.train_steps} steps: ACT mean steps",
            "seed_reported": "speed fastest" if row["variant"] == "speed" else None,
            "mindgym": row["steps_mean"],
            "forward_ms": row["forward_ms"],
            "computed": row["computed"],
            "bits_per_byte": row["bits_per_byte"],
            "minutes": minutes,
        }
        for row in bench.rows
    ]


def agiformer(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    from runners.cross_eval import SEED_NEEDLE_BYTES, generation_backbone, needle_levels, needle_scores

    started = time.perf_counter()
    extra = list(args.agiformer_overrides)
    run = train("generation", "agiformer", args.agiformer_minutes, device, args.out / "agiformer", extra)
    path = run / "checkpoints" / "latest.pt"
    state = load_checkpoint(path)
    model = generation_backbone(state, path, device)
    levels = needle_levels([SEED_NEEDLE_BYTES], [0.0, 0.5, 1.0])
    scores = needle_scores(model, levels, args.episodes, device)
    exact = sum(r["exact"] for r in scores) / len(scores)
    history = state.get("history") or [{}]
    return [
        {
            "seed": "agiformer",
            "measure": f"needle exact at {SEED_NEEDLE_BYTES} bytes (depths 0, 0.5, 1)",
            "seed_reported": 0.0,
            "mindgym": exact,
            "bits_per_char": history[-1].get("bits_per_char"),
            "minutes": (time.perf_counter() - started) / 60,
            "step": int(state["step"]),
        }
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, required=True, help="runs, checkpoints and seed_fidelity.json")
    parser.add_argument("--bwr-minutes", type=float, default=3.0)
    parser.add_argument("--episodes", type=int, default=256, help="sequences per level / needle cell")
    parser.add_argument("--act-train-steps", type=int, default=80)
    parser.add_argument("--act-seq-len", type=int, default=512)
    parser.add_argument("--act-batch", type=int, default=16)
    parser.add_argument("--act-repeats", type=int, default=10)
    parser.add_argument("--act-d-model", type=int, default=None, help="default: the preset's")
    parser.add_argument("--act-n-layers", type=int, default=None)
    parser.add_argument("--act-n-heads", type=int, default=None)
    parser.add_argument("--agiformer-minutes", type=float, default=0.0, help="0: skip the needle check")
    parser.add_argument("--agiformer-overrides", nargs="*", default=[], help="more runner overrides")
    parser.add_argument("--skip", nargs="*", default=[], choices=("bwr_dnc", "cognate"))
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if "bwr_dnc" not in args.skip:
        rows += bwr_dnc(args, device)
    if "cognate" not in args.skip:
        rows += cognate(args, device)
    if args.agiformer_minutes > 0:
        rows += agiformer(args, device)
    table = Benchmark("Seed fidelity (issue 21): the seeds' own results beside MindGym's", device)
    for row in rows:
        table.add(**row)
    table.report(record=False)
    summary = {"device": device_name(device), "rows": rows}
    (args.out / "seed_fidelity.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"Wrote {args.out / 'seed_fidelity.json'}")


if __name__ == "__main__":
    main()
