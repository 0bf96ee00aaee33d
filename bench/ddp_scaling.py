"""DDP scaling: tokens/s per GPU of a runner under torchrun with N processes against one, and eval time.

    python -m bench.ddp_scaling --out /tmp/ddp --procs 1,2,4,8 --override preset=maze_fast  # 8 GPUs
    python -m bench.ddp_scaling --out /tmp/ddp --runner recall --procs 1,2
    python -m bench.ddp_scaling --out /tmp/d --device cpu --procs 1,2 --steps 8 --override trainer.log_every=2

Each run is the runner's own command line, ``torchrun --standalone --nproc_per_node=N -m runners.<runner>``
with ``hardware=gpu hardware.ddp=true`` on CUDA (the one-GPU sizes, bf16; N=1 runs the same config) or
``hardware=ddp hardware.device=cpu`` (gloo), then the ``--override``s, into ``<out>/<runner>-n<N>``. Every
rank trains on its own batches of the configured size (weak scaling), so the per-GPU throughput is rank 0's
``train/tokens_per_s`` (the median of its log points after the first, which holds start-up and compilation)
and the run's is N times that. Scaling efficiency is the per-GPU throughput at N over the one at N=1; the
evaluation seconds are those of the last evaluation, which DDP splits over the ranks. The table is printed,
written to ``<out>/ddp_scaling.json``, and appended to docs/benchmarks.md with ``--record``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bench.harness import Benchmark

REPO = Path(__file__).resolve().parent.parent
RUNNERS = ("maze", "recall", "generation")


def launch(runner: str, procs: int, device: str, overrides: list[str], steps: int, run_dir: Path) -> None:
    """One torchrun of ``runner`` with ``procs`` processes; raises with its output if it fails."""
    hardware = ["hardware=gpu", "hardware.ddp=true"] if device == "cuda" else []
    if device == "cpu":
        hardware = ["hardware=ddp", "hardware.device=cpu", "hardware.num_threads=1"]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
        "-m", f"runners.{runner}", *hardware, f"trainer.steps={steps}", "trainer.progress_bar=false",
        *overrides, f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
                           f"{done.stderr[-4000:]}")  # fmt: skip


def measured(run_dir: Path) -> dict[str, float]:
    """Rank 0's steady per-GPU tokens/s and the last evaluation's seconds, read from the run's record."""
    accumulator = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    accumulator.Reload()
    rates = [event.value for event in accumulator.Scalars("train/tokens_per_s")]
    if not rates:
        raise RuntimeError(
            f"{run_dir} logged no train/tokens_per_s; give it more --steps than trainer.log_every."
        )
    steady = rates[1:] or rates
    report = json.loads((run_dir / "report.json").read_text())
    return {
        "tokens_per_s": statistics.median(steady),
        "log_points": len(steady),
        "eval_seconds": float(report["final"].get("seconds", float("nan"))),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and ddp_scaling.json")
    parser.add_argument("--runner", choices=RUNNERS, default="maze")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--procs", default="1,2", help="process counts, e.g. 1,2,4,8 (1 first: the baseline)")
    parser.add_argument("--steps", type=int, default=400, help="trainer.steps of every run")
    parser.add_argument("--override", action="append", default=[], help="a runner override, repeatable")
    parser.add_argument("--record", action="store_true", help="append the table to docs/benchmarks.md")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.procs.split(",")]
    if counts[0] != 1:
        parser.error(
            f"--procs={args.procs}: start with 1, the one-process run the others are measured against"
        )
    bench = Benchmark(f"DDP scaling: runners.{args.runner} {' '.join(args.override)}".strip(), args.device)
    results: dict[str, Any] = {
        "runner": args.runner,
        "overrides": args.override,
        "steps": args.steps,
        "runs": {},
    }
    for n in counts:
        run_dir = args.out / f"{args.runner}-n{n}"
        launch(args.runner, n, args.device, args.override, args.steps, run_dir)
        results["runs"][n] = measured(run_dir)
    base = results["runs"][1]
    for n, run in results["runs"].items():
        bench.add(
            procs=n,
            tokens_per_s_per_gpu=round(run["tokens_per_s"]),
            tokens_per_s_total=round(n * run["tokens_per_s"]),
            speedup=round(n * run["tokens_per_s"] / base["tokens_per_s"], 2),
            scaling_efficiency=f"{100 * run['tokens_per_s'] / base['tokens_per_s']:.0f}%",
            eval_seconds=round(run["eval_seconds"], 2),
            eval_speedup=round(base["eval_seconds"] / run["eval_seconds"], 2),
        )
    bench.report(record=args.record)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ddp_scaling.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
