"""Generation task throughput: reference-scorer bytes/s on one CPU thread, and vector-env steps/s.

    python -m bench.generation_throughput                   # CPU; appends the table to docs/benchmarks.md
    python -m bench.generation_throughput --device cuda --batch-sizes 1024 8192 65536

The scorer row scores 1,000 held-out texts of 256 bytes each (the issue's target: well under 1 s on one
core) with ``torch.set_num_threads(1)``. The single-env row steps ``gym.make("mindgym/TextQuality-v0")``
(one sub-env on the CPU, dense reward) with random printable bytes at the same level, resetting at each
episode end (issue #23's target: >= 20,000 steps/s on one core). The vector-env rows step
TextQualityVectorEnv with random printable bytes at the ``p64-c64`` level (dense reward, autoreset), so every
step pays for the full reward.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch

import envs  # noqa: F401  (registers mindgym/*)
from bench.harness import Benchmark, cuda_sync_for, vector_steps_per_s
from envs.generation.corpus import default_corpus
from envs.generation.scorer import reference_scorer
from envs.generation.tokens import encode
from envs.generation.vector import TextQualityVectorEnv
from foundation.device import resolve_device


def scorer_seconds(texts: int, length: int, order: int, device: torch.device) -> float:
    """Median seconds to score ``texts`` held-out texts of ``length`` bytes on ``device``."""
    scorer = reference_scorer(order=order).to(device)
    held_out = encode(default_corpus().text("validation"))
    generator = torch.Generator().manual_seed(0)
    starts = torch.randint(0, len(held_out) - length, (texts,), generator=generator)
    batch = held_out[starts[:, None] + torch.arange(length)].to(device)
    sync = cuda_sync_for(device)
    return Benchmark.time(lambda: scorer.token_bits(batch), warmup=1, repeats=5, sync=sync).median


def vector_env_steps_per_s(num_envs: int, device: torch.device, steps: int, level: str) -> float:
    """Sub-env steps per second of TextQualityVectorEnv (``steps`` batched steps per timed call)."""
    env = TextQualityVectorEnv(num_envs, device=device, level=level, seed=0, dense=True)
    env.reset(seed=0)
    generator = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(32, 127, (steps, num_envs), device=device, generator=generator)
    return vector_steps_per_s(env, actions)


def single_env_steps_per_s(steps: int, level: str) -> float:
    """Steps per second of the Gymnasium single env, resets included, median of three timed runs."""
    env = gym.make("mindgym/TextQuality-v0", level=level, dense=True)
    actions = torch.randint(32, 127, (steps,), generator=torch.Generator().manual_seed(0)).tolist()

    def run() -> None:
        env.reset(seed=0)
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    return steps / Benchmark.time(run, warmup=1, repeats=3).median


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="device of the vector env: cpu, cuda, cuda:N, auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--level", default="p64-c64", help="level name of the vector env")
    parser.add_argument("--order", type=int, default=6, help="n-gram order of the reference scorer")
    parser.add_argument("--vector-steps", type=int, default=64)
    parser.add_argument("--single-steps", type=int, default=2000, help="steps of the single env (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (scorer target: 1)")
    parser.add_argument(
        "--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bench = Benchmark("generation throughput", device=device)

    seconds = scorer_seconds(1000, 256, args.order, torch.device("cpu"))
    bench.add(
        what=f"n-gram scorer (order {args.order}), 1,000 texts x 256 bytes, cpu, {args.threads} thread(s)",
        seconds=seconds,
        bytes_per_s=1000 * 256 / seconds,
        target="< 1 s: " + ("met" if seconds < 1.0 else "MISSED"),
    )
    if device.type != "cpu":
        seconds = scorer_seconds(1000, 256, args.order, device)
        bench.add(
            what=f"n-gram scorer (order {args.order}), 1,000 texts x 256 bytes, {device}",
            seconds=seconds,
            bytes_per_s=1000 * 256 / seconds,
        )
    if args.single_steps > 0:
        rate = single_env_steps_per_s(args.single_steps, args.level)
        bench.add(
            what="TextQualityEnv (single, gym.make), cpu",
            steps_per_s=rate,
            target=">= 20,000 steps/s: " + ("met" if rate >= 20_000 else "MISSED"),
        )
    for num_envs in args.batch_sizes:
        rate = vector_env_steps_per_s(num_envs, device, args.vector_steps, args.level)
        bench.add(what=f"TextQualityVectorEnv, {num_envs} envs, {device}", steps_per_s=rate)
    bench.report(record=not args.no_record)


if __name__ == "__main__":
    main()
