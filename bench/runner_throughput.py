"""Throughput of the runners' steps: supervised step, RL step and one evaluation, per runner and device.

    python -m bench.runner_throughput --device cuda                        # all runners, hardware=gpu sizes
    python -m bench.runner_throughput --device cpu --runner maze --override backbone=hebbian
    python -m bench.runner_throughput --device cuda --runner generation --override preset=echo --no-record

Each runner's config is composed as the command line would (``hardware=gpu`` on CUDA, ``hardware=cpu``
otherwise, then ``--override``s); the table (tokens/s and steps/s of supervised steps, env steps/s of RL
steps, seconds per evaluation) is printed and, unless ``--no-record``, appended to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from bench.harness import Benchmark, cuda_sync_for
from foundation import resolve_device, seed_everything
from runners.config import register_configs
from runners.ddp import DistInfo
from runners.evaluate import EXPERIMENTS
from runners.logging import RunLogger

RUNNERS = tuple(EXPERIMENTS)
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def measure(runner: str, device: torch.device, overrides: list[str], repeats: int, bench: Benchmark) -> None:
    """Time one runner's supervised step, RL step and evaluation; add a row to ``bench``."""
    profile = "hardware=gpu" if device.type == "cuda" else "hardware=cpu"
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            runner, [profile, f"hardware.device={device}", "trainer.progress_bar=false", *overrides]
        )
    seed_everything(int(cfg.seed))
    if cfg.hardware.num_threads > 0:
        torch.set_num_threads(int(cfg.hardware.num_threads))
    experiment = EXPERIMENTS[runner](cfg, DistInfo(device=device))
    agent, sync = experiment.agent, cuda_sync_for(device)
    batch_size = agent.sup_config.batch_size
    batches = [experiment.sampler.sample_batch(batch_size, device) for _ in range(4)]
    calls = iter(range(10**9))

    def supervised() -> None:
        agent.supervised_step(batches[next(calls) % len(batches)])

    sup = bench.time(supervised, warmup=3, repeats=repeats, sync=sync)
    tokens = sum(b.tokens.numel() for b in batches) / len(batches)
    rl = bench.time(
        lambda: agent.rl_step(experiment.rl_env), warmup=1, repeats=max(2, repeats // 5), sync=sync
    )
    env_steps = agent.rl_config.rollout_steps * experiment.rl_env.num_envs
    evaluation = bench.time(lambda: experiment.evaluate(0, RunLogger("unused", enabled=False)), 0, 1, sync)
    params = sum(p.numel() for p in agent.backbone.parameters())
    bench.add(
        runner=runner,
        overrides=" ".join(overrides) or "-",
        params_M=params / 1e6,
        batch=batch_size,
        sup_steps_per_s=1.0 / sup.median,
        tokens_per_s=tokens / sup.median,
        rl_env_steps_per_s=env_steps / rl.median,
        eval_s=evaluation.median,
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--runner", choices=[*RUNNERS, "all"], default="all")
    parser.add_argument("--override", action="append", default=[], help="a Hydra override (repeatable)")
    parser.add_argument("--repeats", type=int, default=20, help="timed supervised steps")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    bench = Benchmark("runner step throughput", device)
    for runner in RUNNERS if args.runner == "all" else (args.runner,):
        measure(runner, device, list(args.override), args.repeats, bench)
    return bench.report(record=not args.no_record)


if __name__ == "__main__":
    main()
