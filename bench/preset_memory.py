"""Host memory and checkpoint size of each runner preset for a few CPU training steps.

    python -m bench.preset_memory                          # every preset and runner default, 2 steps
    python -m bench.preset_memory --only cognate agiformer --steps 2 --set trainer.supervised.batch_size=4

Each preset runs in its own process (so its peak resident set size is its own): the runner's experiment is
built from the composed config exactly as ``python -m runners.<runner> preset=<name>`` builds it, then
trained for ``--steps`` optimiser steps without evaluation (with ``--device cuda`` under ``hardware=gpu``,
as ``python -m runners.<runner> preset=<name> hardware=gpu`` runs). Printed per preset: parameters, the
size of a checkpoint's ``experiment`` entry after the steps (weights, optimiser state, curriculum), peak
RSS after building and after the steps, and seconds per step; on a GPU (RSS is still host memory) the
GPU's peak allocation is added.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from typing import Any

# (runner, preset or None for the runner's default config)
CASES: tuple[tuple[str, str | None], ...] = (
    ("maze", None),
    ("maze", "maze_fast"),
    ("maze", "poh_maze"),
    ("recall", None),
    ("recall", "bwr_dnc"),
    ("generation", None),
    ("generation", "agiformer"),
    ("generation", "echo"),
    ("generation", "cognate"),
    ("generation", "cognate_memory"),
    ("generation", "cognate_reasoning"),
    ("generation", "cognate_speed"),
)


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(runner: str, overrides: list[str], steps: int, device: str, threads: int) -> dict[str, Any]:
    """Build ``runner`` with ``overrides``, train ``steps`` steps; sizes, peak RSS and time per step."""
    import importlib

    import torch

    from bench.harness import runner_config
    from runners.ddp import DistInfo

    torch.set_num_threads(threads)
    hardware = ["hardware=gpu"] if device.startswith("cuda") else []  # as the docs' GPU commands run
    cfg = runner_config(runner, [*hardware, f"hardware.device={device}", *overrides])
    module = importlib.import_module(f"runners.{runner}")
    rss_start = peak_rss_mb()
    experiment = module.build_experiment(cfg, DistInfo(device=torch.device(device)))
    rss_built = peak_rss_mb()
    params = sum(p.numel() for p in experiment.agent.backbone.parameters())
    start = time.perf_counter()
    for step in range(steps):
        experiment.train_step(step)
        experiment.curriculum.advance(1)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / max(steps, 1)
    buffer = io.BytesIO()
    torch.save(experiment.state_dict(), buffer)
    result = {
        "params_m": params / 1e6,
        "checkpoint_mb": buffer.tell() / 2**20,
        "rss_import_mb": rss_start,
        "rss_built_mb": rss_built,
        "rss_peak_mb": peak_rss_mb(),
        "s_per_step": seconds,
        "batch_size": int(cfg.trainer.supervised.batch_size),
    }
    if device.startswith("cuda"):
        result["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main(argv: list[str] | None = None) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--only", nargs="*", help="preset names (or maze/recall/generation for a default)")
    parser.add_argument("--steps", type=int, default=2, help="training steps per preset (default 2)")
    parser.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides for every preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per preset before giving up")
    parser.add_argument("--child", nargs=2, metavar=("RUNNER", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        runner, preset = args.child
        overrides = ([] if preset == "-" else [f"preset={preset}"]) + list(args.set)
        print(json.dumps(measure(runner, overrides, args.steps, args.device, args.threads)))
        return
    cases = [(r, p) for r, p in CASES if not args.only or (p or r) in args.only]
    extra = " ".join(args.set) or "none"
    print(f"{args.steps} training steps on {args.device}, {args.threads} thread(s); extra overrides: {extra}")
    header = f"{'runner':<11}{'preset':<19}{'batch':>6}{'params M':>9}{'ckpt MB':>9}"
    print(header + f"{'RSS built MB':>13}{'RSS peak MB':>12}{'s/step':>8}")
    for runner, preset in cases:
        command = [sys.executable, "-m", "bench.preset_memory", "--child", runner, preset or "-"]
        command += ["--steps", str(args.steps), "--device", args.device, "--threads", str(args.threads)]
        command += ["--set", *args.set] if args.set else []
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{runner:<11}{preset or '(default)':<19} timed out after {args.timeout:.0f} s", flush=True)
            continue
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            print(f"{runner:<11}{preset or '(default)':<19} failed: {reason}", flush=True)
            continue
        r = json.loads(lines[-1])
        row = f"{runner:<11}{preset or '(default)':<19}{r['batch_size']:>6}{r['params_m']:>9.2f}"
        row += f"{r['checkpoint_mb']:>9.1f}{r['rss_built_mb']:>13.0f}{r['rss_peak_mb']:>12.0f}"
        row += f"{r['s_per_step']:>8.2f}"
        if "gpu_peak_mb" in r:
            row += f"  GPU peak {r['gpu_peak_mb']:.0f} MB"
        print(row, flush=True)


if __name__ == "__main__":
    main()
