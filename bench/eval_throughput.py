"""Greedy maze evaluation throughput: env steps/s of batched greedy rollouts of 12x12 DFS mazes.

Every sub-env of a native ``MazeVectorEnv`` (token observations, on the device) walks one fresh maze
greedily through the project's one rollout function (:func:`agents.rollout.rollout`), the backbone
streaming (it reads the maze once, then one move a step, continuing its KV cache) exactly as
``runners.maze`` evaluates in ``task.eval_mode=rollout``. The model is ``preset=maze_fast``'s (width 384,
6 heads, depth 4, the poh_maze size), randomly initialised, or a run's trained weights with
``--checkpoint`` (then the table also reports exact-path and success rates).

``env_steps_per_s`` counts only steps of live episodes (the sum of every sub-env's first-episode length,
over the whole rollout's wall-clock, maze generation at reset included): a sub-env that finished early
keeps stepping the env until the last one finishes, and those steps are not counted (``live_share`` says
how many of the loop's sub-env steps were live; the backbone stops computing finished sub-envs once at
most half of those it streams are live, ``BackbonePolicy.focus``). ``host_syncs`` is the number of times
one rollout waits on the GPU (CUDA only): the completion check every ``--check-every`` steps plus the
fixed few. Modes:
``eager``, and ``compiled`` (``torch.compile(dynamic=True)`` of the backbone: two graphs, the prefix and
the streamed step, generic in the batch, which shrinks as mazes finish, and in the attended length, which
grows a position a step; so no CUDA graph). ``--kv``:
``reserved`` (the rollout's default: the KV cache has room for the longest episode and each step writes
its token in place, so a step reads the cache once) or ``grown`` (concatenated every step: a copy of the
whole cache per step, the behaviour before ``Backbone.reserve_state``); both walk the same way.

    python -m bench.eval_throughput --device cuda --bf16 --num-envs 256 1024 4096 16384 \
        --kv reserved grown --out /tmp/eval_bench
        # not timed alone on a GPU: each row is a first call (28 s at 1,024 envs on the shared H200 of
        # docs/benchmarks.md) then three rollouts (3-14 s each there at 1,024-4,096 envs)
    python -m bench.eval_throughput --device cuda --bf16 --num-envs 4096 16384 --modes compiled
    python -m bench.eval_throughput --device cpu --num-envs 16 64 --threads 1   # a CPU row
    python -m bench.eval_throughput --device cuda --checkpoint outputs/<run>  # a trained run's weights
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from agents.backbones import Backbone, build_backbone
from agents.rollout import BackbonePolicy, Rollout, rollout
from bench.harness import Benchmark, cuda_sync_for, host_syncs, runner_config, time_call
from envs.maze import MazeTask
from envs.maze.vector import MazeVectorEnv
from foundation import seed_everything
from foundation.device import resolve_device
from runners.checkpoints import CheckpointError, load_resume_state
from runners.config import SCHEMAS

PRESET = "maze_fast"
MODES = ("eager", "compiled")
KV_MODES = ("reserved", "grown")  # written in place into room for the longest episode / concatenated


@dataclasses.dataclass
class EvalModel:
    """What the bench evaluates: the run config (``task`` and ``backbone`` sections are read), the task
    at the evaluated level, and the backbone on its device in eval mode."""

    cfg: DictConfig
    task: MazeTask
    backbone: Backbone
    trained: bool


def eval_config(checkpoint: str | None, overrides: list[str]) -> tuple[DictConfig, dict[str, Any] | None]:
    """The maze runner config to evaluate and the run's weights: ``preset=maze_fast`` plus ``overrides``
    (random weights), or the config and backbone weights saved in a run's checkpoint."""
    if checkpoint is None:
        return runner_config("maze", [f"preset={PRESET}", *overrides]), None
    if overrides:
        raise SystemExit("--override applies to the preset only; a --checkpoint brings its run's config.")
    try:
        point = load_resume_state(checkpoint, ".")
    except CheckpointError as error:
        raise SystemExit(f"--checkpoint: {error}") from None
    if point is None or point.runner != "maze":
        raise SystemExit(f"--checkpoint {checkpoint} is not a maze run's checkpoint; pass a maze run folder.")
    cfg = OmegaConf.merge(OmegaConf.structured(SCHEMAS["maze_schema"]), point.config)
    return cfg, point.state["experiment"]["agent"]["backbone"]


def eval_model(
    cfg: DictConfig, level: str, device: torch.device, weights: dict[str, Any] | None = None
) -> EvalModel:
    """The backbone ``cfg`` describes, as the maze runner builds it (the task's vocabulary and horizons),
    with ``weights`` when given, and a task whose one level is ``level`` (e.g. ``12x12``)."""
    task = MazeTask.from_spec([level], horizons=int(cfg.task.horizons))
    backbone_cfg = dataclasses.replace(
        OmegaConf.to_object(cfg.backbone), vocab_size=task.vocab_size, horizons=task.horizons
    )
    backbone = build_backbone(backbone_cfg)
    if weights is not None:
        backbone.load_state_dict(weights)
    return EvalModel(cfg, task, backbone.to(device).eval(), weights is not None)


def eval_env(model: EvalModel, num_envs: int, device: torch.device, seed: int = 0) -> MazeVectorEnv:
    """The vector env the maze runner evaluates in (``MazeExperiment.make_vector_env``'s options)."""
    if num_envs < 1:
        raise SystemExit(f"--num-envs must be >= 1, got {num_envs}.")
    options = {"obs_mode": "tokens", "step_limit_factor": float(model.cfg.task.step_limit_factor)}
    return MazeVectorEnv(num_envs, task=model.task, device=device, seed=seed, **options)


def greedy_policy(
    model: EvalModel, backbone: torch.nn.Module | None = None, reserve_kv: bool = True
) -> BackbonePolicy:
    """The runner's greedy evaluation policy (``DualAgent.backbone_policy(mask_invalid, stream=True)``),
    optionally over a compiled ``backbone`` module of the same model; ``reserve_kv=False``: the KV cache
    concatenated every step instead of written in place (the same walks)."""
    return BackbonePolicy(
        backbone if backbone is not None else model.backbone,  # type: ignore[arg-type]
        action_token_ids=torch.as_tensor(model.task.action_token_ids),
        greedy=True,
        mask_invalid=bool(model.cfg.task.mask_invalid),
        stream=True,
        reserve_kv=reserve_kv,
    )


def greedy_rollout(
    env: MazeVectorEnv, policy: BackbonePolicy, seed: int, check_every: int = 8, bf16: bool = False
) -> Rollout:
    """One greedy episode per sub-env from ``reset(seed=seed)``, under bf16 autocast when asked."""
    autocast = torch.autocast(env.device.type, torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        return rollout(env, policy, seed=seed, check_every=check_every)


def live_env_steps(out: Rollout) -> int:
    """Steps of live episodes: the sum over sub-envs of their first episode's length."""
    return int(out.final["steps"].sum())


def measure(
    model: EvalModel,
    num_envs: int,
    mode: str,
    check_every: int,
    args: argparse.Namespace,
    kv: str = "reserved",
) -> dict[str, Any]:
    """One table row: rollout time, live env steps/s, host syncs and (trained weights) the rates."""
    device = next(model.backbone.parameters()).device
    row: dict[str, Any] = {"num_envs": num_envs, "mode": mode, "kv": kv, "check_every": check_every}
    row["precision"] = "bf16" if args.bf16 else "fp32"
    env = eval_env(model, num_envs, device)
    module = torch.compile(model.backbone, dynamic=True) if mode == "compiled" else model.backbone
    policy = greedy_policy(model, module, reserve_kv=kv == "reserved")
    sync = cuda_sync_for(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run() -> Rollout:
        return greedy_rollout(env, policy, args.seed, check_every, args.bf16)

    started = time.perf_counter()
    out = run()  # warm-up (compiles in the compiled mode)
    if sync:
        sync()
    row["first_call_s"] = time.perf_counter() - started
    row["reset_s"] = time_call(lambda: env.reset(seed=args.seed), warmup=1, repeats=2, sync=sync).median
    timing = time_call(run, warmup=0, repeats=args.repeats, sync=sync)
    live = live_env_steps(out)
    row.update(rollout_s=timing.median, loop_steps=out.env_steps // num_envs, live_env_steps=live)
    row["live_share"] = live / max(out.env_steps, 1)
    row["env_steps_per_s"] = live / timing.median
    row["host_syncs"] = host_syncs(run) if device.type == "cuda" else "n/a (cpu)"
    if model.trained:
        row["exact_path"] = float(out.final["solved_optimally"].float().mean())
        row["success"] = float(out.final["success"].float().mean())
    if device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--modes", nargs="+", default=["eager"], choices=MODES)
    parser.add_argument("--kv", nargs="+", default=["reserved"], choices=KV_MODES, help="KV cache")
    parser.add_argument("--check-every", type=int, nargs="+", default=[8], help="steps between checks")
    parser.add_argument("--level", default="12x12", help="maze level evaluated (a default ladder name)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (the runner's rollout: fp32)")
    parser.add_argument("--checkpoint", default=None, help="a maze run's folder or .pt (default: random)")
    parser.add_argument("--override", nargs="*", default=[], help="preset overrides: backbone.n_layers=2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=None, help="folder for eval_throughput.json")
    parser.add_argument("--record", action="store_true", help="also append the table to docs/benchmarks.md")
    args = parser.parse_args()
    if any(k < 1 for k in args.check_every):
        raise SystemExit(f"--check-every values must be >= 1, got {args.check_every}.")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    seed_everything(args.seed)  # the random init, so that every run walks the same mazes the same way
    cfg, weights = eval_config(args.checkpoint, args.override)
    model = eval_model(cfg, args.level, device, weights)
    params = model.backbone.num_parameters() / 1e6
    source = f"weights of {args.checkpoint}" if model.trained else "random init"
    title = f"greedy maze evaluation throughput, {args.level}, {PRESET} model ({params:.1f}M, {source})"
    bench = Benchmark(title, device)
    for num_envs, mode, kv, k in itertools.product(args.num_envs, args.modes, args.kv, args.check_every):
        started = time.perf_counter()
        try:
            bench.add(**measure(model, num_envs, mode, k, args, kv))
        except torch.OutOfMemoryError:  # a measured limit of this device: the row says so, the sweep goes on
            torch.cuda.empty_cache()
            bench.add(num_envs=num_envs, mode=mode, kv=kv, check_every=k, rollout_s="out of memory")
        print(f"{num_envs} envs, {mode}, {kv} KV, k={k}: {time.perf_counter() - started:.0f} s", flush=True)
    bench.report(record=args.record)
    print("env_steps_per_s counts steps of live episodes only (each sub-env's first episode).")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval_throughput.json").write_text(json.dumps(bench.rows, indent=2))


if __name__ == "__main__":
    main()
