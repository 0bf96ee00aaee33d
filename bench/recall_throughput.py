"""Recall env throughput: single-env steps/s beside POPGym's RepeatPrevious, and vector-env steps/s.

    python -m bench.recall_throughput                       # CPU; appends the table to docs/benchmarks.md
    python -m bench.recall_throughput --device cuda --batch-sizes 1024 8192 65536

The single-env rows step with random actions and reset on termination, as an RL collector does. The
default level (copy ``len32-v16``, 64 stream steps an episode) is close to RepeatPreviousEasy's 51 steps.
POPGym is optional (``pip install popgym``); without it the comparison row says it was skipped.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench.harness import Benchmark, vector_steps_per_s
from envs.recall.env import RecallEnv
from envs.recall.vector import RecallVectorEnv
from foundation.device import resolve_device

DEFAULT_LEVELS = {
    "copy": "len32-v16",
    "repeat_copy": "len8-v16-x6",
    "associative": "kv8-v64-q8-t64",
    "needle": "ctx1k",
}


def single_env_steps_per_s(env, steps: int, seed: int = 0) -> float:
    """Steps per second of a Gymnasium env under random actions, resetting whenever an episode ends."""
    actions = np.random.default_rng(seed).integers(env.action_space.n, size=steps)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def popgym_repeat_previous():
    """POPGym's RepeatPreviousEasy, or None when popgym is not installed."""
    try:
        from popgym.envs.repeat_previous import RepeatPreviousEasy
    except ImportError:
        return None
    return RepeatPreviousEasy()


def vector_env_steps_per_s(
    family: str, mode: str, level: str, num_envs: int, device: torch.device, steps: int
):
    """Sub-env steps per second of RecallVectorEnv (``steps`` batched steps per timed call)."""
    env = RecallVectorEnv(num_envs, family=family, obs_mode=mode, device=device, level=level, seed=0)
    env.reset(seed=0)
    generator = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(
        0, int(env.single_action_space.n), (steps, num_envs), device=device, generator=generator
    )
    return vector_steps_per_s(env, actions)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="device of the vector env: cpu, cuda, cuda:N, auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--family", default="copy", choices=["copy", "repeat_copy", "associative", "needle"])
    parser.add_argument("--level", default=None, help="level name of --family (default: a mid-ladder level)")
    parser.add_argument("--single-steps", type=int, default=20000)
    parser.add_argument("--vector-steps", type=int, default=50)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.level = args.level or DEFAULT_LEVELS[args.family]
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    single = Benchmark("recall single-env throughput (random actions, with resets)", device="cpu")
    popgym = popgym_repeat_previous()
    if popgym is None:
        single.add(env="POPGym RepeatPreviousEasy", steps_per_s="skipped: popgym not installed")
        print("POPGym is not installed: the RepeatPrevious comparison was skipped (pip install popgym).")
    else:
        single.add(
            env="POPGym RepeatPreviousEasy", steps_per_s=single_env_steps_per_s(popgym, args.single_steps)
        )
    for mode in ("stream", "sequence"):
        env = RecallEnv(args.family, obs_mode=mode, level=args.level)
        single.add(
            env=f"RecallEnv {args.family} {args.level} {mode}",
            steps_per_s=single_env_steps_per_s(env, args.single_steps),
        )
    single.report(record=not args.no_record)

    vector = Benchmark(f"recall vector-env throughput ({args.family} {args.level})", device=device)
    for mode in ("stream", "sequence"):
        for num_envs in args.batch_sizes:
            rate = vector_env_steps_per_s(args.family, mode, args.level, num_envs, device, args.vector_steps)
            vector.add(mode=mode, num_envs=num_envs, device=str(device), steps_per_s=rate)
    vector.report(record=not args.no_record)


if __name__ == "__main__":
    main()
