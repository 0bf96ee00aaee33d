"""Cost of a curriculum on the native maze vector env: sub-env steps/s bare and under each schedule.

    python -m bench.curriculum_overhead                         # CPU; appends the table to docs/benchmarks.md
    python -m bench.curriculum_overhead --device cuda --batch-sizes 1024 8192 65536

Each timed call is ``--steps`` batched steps with random actions. The wrapped rows update the per-level
success statistics and the schedule on every step and set every sub-env's next level, all on the env's
device; the "overhead" column is the extra time per step relative to the bare env.
"""

from __future__ import annotations

import argparse

import torch

from bench.harness import Benchmark, vector_steps_per_s
from curricula import CurriculumVectorWrapper, build_schedule
from envs.maze.levels import default_levels
from envs.maze.vector import MazeVectorEnv
from foundation.device import resolve_device

LADDER = default_levels()[:5]  # 5x5 .. 10x10: the pool builds quickly, the curriculum cost is the same
SCHEDULES = {
    "adaptive": {"min_episodes": 32},
    "mixture": {"min_episodes": 32},
    "learning_progress": {},
}


def steps_per_s(num_envs: int, device: torch.device, steps: int, schedule: str | None) -> float:
    """Sub-env steps per second of MazeVectorEnv (5x5 to 10x10 ladder), optionally under a curriculum."""
    env = MazeVectorEnv(num_envs, device=device, obs_mode="egocentric", levels=LADDER, pool_size=128, seed=0)
    if schedule is not None:
        env = CurriculumVectorWrapper(
            env, build_schedule(schedule, env.task.num_levels, **SCHEDULES[schedule])
        )
    env.reset(seed=0)
    generator = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(0, 4, (steps, num_envs), device=device, generator=generator)
    return vector_steps_per_s(env, actions)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="device of the vector env: cpu, cuda, cuda:N, auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=50, help="batched steps per timed call")
    parser.add_argument(
        "--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    bench = Benchmark("curriculum overhead on MazeVectorEnv (egocentric)", device)
    for num_envs in args.batch_sizes:
        bare = steps_per_s(num_envs, device, args.steps, None)
        bench.add(num_envs=num_envs, schedule="none (bare env)", steps_per_s=bare, overhead="")
        for name in SCHEDULES:
            wrapped = steps_per_s(num_envs, device, args.steps, name)
            extra_us = (num_envs / wrapped - num_envs / bare) * 1e6
            bench.add(
                num_envs=num_envs, schedule=name, steps_per_s=wrapped, overhead=f"{extra_us:+.0f} us/step"
            )
    bench.report(record=not args.no_record)


if __name__ == "__main__":
    main()
