"""Maze throughput: single-env steps/s beside MiniGrid-Empty-8x8 (CPU), and the native vector env's
steps/s at several batch sizes with full observations and automatic resets (CPU or GPU).

When jax and jumanji import (``pip install -e .[bench]``), Jumanji's Maze-v0 (10x10, autoreset onto a new
maze) runs in the same process on the same kind of device at each batch size, and every MazeVectorEnv
row gets a ``vs_jumanji`` column: its steps/s over Jumanji's at that batch size (``--maze 10`` compares
equal maze sizes). A second Jumanji row steps it without resets (no new mazes) to show what its autoreset
costs. Without jax and jumanji the comparison is skipped with a message.

    python -m bench.maze_throughput --device cpu
    python -m bench.maze_throughput --device cuda --compile both --cuda-graph both
    python -m bench.maze_throughput --device cuda --single-steps 0 --maze 10 --sizes 131072 \
        --modes walls egocentric grid --compile on --cuda-graph on
    python -m bench.maze_throughput --device cuda --single-steps 0 --maze 10 --sizes 131072 \
        --modes walls --compile on --cuda-graph on --fresh-mazes 0 1 2

``--fresh-mazes F`` makes the timed loop pay for new mazes as Jumanji's autoreset does: F newly generated
mazes per reset (see ``vector_steps_per_s``), the fair row beside Jumanji's autoreset.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers mindgym/Maze-v0)
from bench import jumanji_maze
from bench.harness import Benchmark, cuda_sync_for
from envs.maze import MazeLevel
from envs.maze.vector import MazeVectorEnv
from foundation.device import resolve_device


def single_env_steps_per_s(env: gym.Env, steps: int, seed: int = 0) -> float:
    """Random-action steps/s of one Gymnasium env (made with gym.make, so wrappers included)."""
    actions = np.random.default_rng(seed).integers(0, 4, size=steps).tolist()
    env.reset(seed=seed)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def steps_per_chunk(num_envs: int, device: torch.device) -> int:
    """Steps timed per call: enough that a call outlasts its launch, few enough to stay cheap."""
    return max(2, min(32, 2**22 // num_envs)) if device.type == "cuda" else max(1, min(8, 2**16 // num_envs))


def vector_steps_per_s(
    bench: Benchmark,
    num_envs: int,
    obs_mode: str,
    level: MazeLevel,
    device: torch.device,
    compile: bool,
    cuda_graph: bool = False,
    fresh_factor: float = 0.0,
) -> tuple[float, float]:
    """Random-action steps/s (sub-env steps) of MazeVectorEnv with autoreset and full observations, and
    the mazes generated per reset while timed (0 when the pool is not refilled).

    ``fresh_factor=0``: episodes draw from a fixed device pool of 1,024 mazes (the env as a runner holds it
    between refreshes). ``fresh_factor=f > 0``: the timed loop pays for new mazes as Jumanji's autoreset
    does: it generates a new pool bank (``refresh_pool``) of ``f`` times the resets counted beforehand over
    the steps between two refreshes (at least one maze per reset, checked by the returned figure); draws
    from a bank are with replacement, so some resets share a maze (fewer as ``f`` grows)."""
    chunk = steps_per_chunk(num_envs, device)
    gen = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(4, (chunk, num_envs), generator=gen, device=device)
    pool_size, banks, chunks_per_refresh = 1024, 1, 1
    if fresh_factor > 0:
        pool_size, chunks_per_refresh = fresh_pool_plan(num_envs, level, device, actions, fresh_factor)
        banks = 2
    env = MazeVectorEnv(
        num_envs,
        device=device,
        obs_mode=obs_mode,
        levels=[level],
        seed=0,
        pool_size=pool_size,
        pool_banks=banks,
        compile=compile,
        cuda_graph=cuda_graph,
    )
    env.reset(seed=0)
    resets = torch.zeros((), dtype=torch.long, device=device)
    refreshes = 0

    def run() -> None:
        nonlocal refreshes
        for _ in range(chunks_per_refresh):
            for k in range(chunk):
                _, _, terminated, truncated, _ = env.step(actions[k])
                if fresh_factor > 0:
                    resets.add_((terminated | truncated).sum())
        if fresh_factor > 0:
            refreshes += 1
            _, restarted = env.refresh_pool(refreshes)
            resets.add_(restarted.sum())

    timing = bench.time(run, warmup=2, repeats=5, sync=cuda_sync_for(device))
    per_reset = refreshes * pool_size / max(int(resets), 1) if fresh_factor > 0 else 0.0
    return chunks_per_refresh * chunk * num_envs / timing.median, per_reset


def fresh_pool_plan(
    num_envs: int, level: MazeLevel, device: torch.device, actions: torch.Tensor, factor: float
) -> tuple[int, int]:
    """(maze pool size, chunks of ``actions`` between refreshes) for ``factor`` new mazes a reset.

    Refreshes are spaced beyond the longest episode (the pool's largest step limit), so ``refresh_pool``
    never cuts a running episode short; the pool holds ``factor`` times the episodes that ended over one
    such interval of random steps (after a warm-up interval, since episodes start together), plus 20% for
    the interval-to-interval spread."""
    env = MazeVectorEnv(num_envs, device=device, obs_mode="walls", levels=[level], seed=1, pool_size=1024)
    env.reset(seed=1)
    chunk = len(actions)
    chunks = int(env.pool.limit.max()) // chunk + 1
    ended = torch.zeros((), dtype=torch.long, device=device)
    for interval in range(2):
        for _ in range(chunks):
            for k in range(chunk):
                _, _, terminated, truncated, _ = env.step(actions[k])
                if interval:
                    ended += (terminated | truncated).sum()
    return max(1, math.ceil(1.2 * factor * int(ended))), chunks


def jumanji_rows(bench: Benchmark, sizes: list[int], device: torch.device) -> dict[int, float]:
    """Jumanji Maze-v0 steps/s at each size with autoreset (the reference of the ``vs_jumanji`` column),
    and without resets for scale; {} with a message when jax or jumanji is missing or has no such device."""
    missing = jumanji_maze.available()
    if missing:
        print(f"Skipping the Jumanji Maze-v0 comparison: {missing}")
        return {}
    reference: dict[int, float] = {}
    for n in sizes:
        for autoreset in (True, False):
            try:
                sps = jumanji_maze.steps_per_s(n, steps_per_chunk(n, device), device.type, autoreset)
            except RuntimeError as err:  # e.g. a CPU-only jax beside a GPU torch
                print(f"Skipping the Jumanji Maze-v0 comparison: {err}")
                return reference
            reference.setdefault(n, sps)
            label = "autoreset" if autoreset else "no resets"
            bench.add(
                env=f"Jumanji Maze-v0 10x10 {label} ({device.type}, jax)",
                obs="walls+positions",
                envs=n,
                compile="jit",
                cuda_graph="-",
                steps_per_s=sps,
                vs_jumanji=sps / reference[n],
            )
            print(f"   jumanji {label} envs={n:>7}: {sps:.3e} steps/s")
    return reference


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 16384, 131072], help="num_envs values")
    parser.add_argument("--maze", type=int, default=12, help="vector-env maze size (cells per side)")
    parser.add_argument("--modes", nargs="+", default=["walls", "grid", "egocentric", "tokens"])
    parser.add_argument(
        "--jumanji", choices=["auto", "off"], default="auto", help="compare with Jumanji Maze-v0 if installed"
    )
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off")
    parser.add_argument(
        "--cuda-graph", choices=["off", "on", "both"], default="off", help="replay each step as a CUDA graph"
    )
    parser.add_argument("--single-steps", type=int, default=20000, help="0 skips the single-env comparison")
    parser.add_argument(
        "--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 keeps torch's default)")
    parser.add_argument(
        "--fresh-mazes",
        type=float,
        nargs="+",
        default=[0.0],
        metavar="F",
        help="0: episodes draw from a fixed pool of 1,024 mazes; F > 0: the timed loop also generates F new "
        "mazes per reset (a new pool bank after every chunk), as Jumanji's autoreset generates one",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bench = Benchmark("maze throughput", device=device)

    if args.single_steps:
        level = MazeLevel("8x8", 8, 8)
        for obs_mode in ("grid", "egocentric"):
            env = gym.make("mindgym/Maze-v0", obs_mode=obs_mode, levels=[level])
            sps = single_env_steps_per_s(env, args.single_steps)
            bench.add(
                env="mindgym/Maze-v0 8x8 (single, cpu)", obs=obs_mode, envs=1, compile="-", steps_per_s=sps
            )
        try:
            import minigrid  # noqa: F401  (registers MiniGrid envs)

            env = gym.make("MiniGrid-Empty-8x8-v0")
            sps = single_env_steps_per_s(env, args.single_steps)
            bench.add(
                env="MiniGrid-Empty-8x8-v0 (single, cpu)", obs="image", envs=1, compile="-", steps_per_s=sps
            )
        except ImportError:
            print("minigrid is not installed: pip install minigrid (skipping the comparison)")

    jumanji = jumanji_rows(bench, args.sizes, device) if args.jumanji == "auto" else {}

    level = MazeLevel(f"{args.maze}x{args.maze}", args.maze, args.maze)
    choices = {"off": [False], "on": [True], "both": [False, True]}
    graphs = choices[args.cuda_graph] if device.type == "cuda" else [False]
    settings = [(c, g) for c in choices[args.compile] for g in graphs]
    runs = itertools.product(args.modes, settings, args.fresh_mazes, args.sizes)
    for obs_mode, (compile, graph), fresh, n in runs:
        try:
            sps, per_reset = vector_steps_per_s(bench, n, obs_mode, level, device, compile, graph, fresh)
        except torch.OutOfMemoryError:
            print(f"out of memory at {n} envs ({obs_mode}); skipped")
            continue
        bench.add(
            env=f"MazeVectorEnv {level.name} ({device.type})",
            obs=obs_mode,
            envs=n,
            compile="yes" if compile else "no",
            cuda_graph="yes" if graph else "no",
            new_mazes_per_reset=per_reset if fresh else "- (pool of 1,024)",
            steps_per_s=sps,
            **({"vs_jumanji": sps / jumanji[n]} if n in jumanji else {}),
        )
        new_mazes = f", {per_reset:.2f} new mazes a reset" if fresh else ""
        ratio = f" ({sps / jumanji[n]:.2f}x Jumanji)" if n in jumanji else ""
        setting = f"{obs_mode:>10} compile={compile!s:5} graph={graph!s:5} envs={n:>7}"
        print(f"{setting}: {sps:.3e} steps/s{new_mazes}{ratio}")
    bench.report(record=not args.no_record)


if __name__ == "__main__":
    main()
