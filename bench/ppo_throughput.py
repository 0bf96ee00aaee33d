"""Where runners.ppo's time goes: env steps/s of the env alone, of the rollout (policy acting + env), of the
PPO update, and of both together, per policy variant, eager and ``torch.compile``-d.

Every variant runs the ``maze8`` preset's settings (``--preset``) at its last level (8x8 mazes, no
curriculum), through the runner's own functions (``runners.ppo.collect``, ``optimise``), so the numbers
are the training loop's. Columns: ``env`` (random legal moves, the env alone), ``rollout`` (act + step,
``ppo.num_steps`` steps of all sub-envs), ``update`` (env steps of rollout data consumed per second by
``ppo.update_epochs`` x ``ppo.num_minibatches`` minibatches), ``train`` (the two in sequence: what a run
gets before evaluations), the share of the rollout in it, the work of one act step (one policy forward:
CUDA kernels on a GPU, torch ops on the CPU, counted by torch.profiler), the first call's seconds
(compile time for compiled variants), on CUDA the host syncs of one whole rollout (torch.cuda's sync
debug mode) and peak GPU memory.

    python -m bench.ppo_throughput --device cuda --out outputs/ppo_bench     # H200: ~3 minutes (estimate)
    python -m bench.ppo_throughput --device cpu --num-envs 64 --variants graph --repeats 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from bench.harness import Benchmark, cuda_sync_for, host_syncs, runner_config, time_call
from runners.ppo import RolloutBuffer, build_policy, collect, optimise, rollout_advantages, sample_actions
from runners.ppo_config import register_ppo_config
from runners.ppo_envs import make_training_env, masked_logits, uses_action_mask

CNN = ["policy.kind=maze_cnn", "policy.channels=32", "policy.iterations=24"]  # the previous maze8 policy
VARIANTS = {  # name: policy overrides of the preset (graph: the preset's own policy)
    "cnn": [*CNN, "policy.compile=false"],
    "cnn_compiled": [*CNN, "policy.compile=true"],
    "graph": ["policy.compile=false"],
    "graph_compiled": ["policy.compile=true"],
}


def launches_per_act(
    net: torch.nn.Module, obs: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
) -> int:
    """Work items of one policy forward, counted by torch.profiler: CUDA kernels on a GPU (what the host
    launches), top-level torch ops on the CPU."""
    cuda = obs.is_cuda
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    with torch.no_grad(), profile(activities=activities) as prof:
        net(obs, state, starts)
        if cuda:
            torch.cuda.synchronize()
    if cuda:
        events = prof.events()
        kernels = sum(1 for e in events if e.device_type == DeviceType.CUDA)
        return kernels or sum(len(e.kernels) for e in events)  # kernels listed apart, or under their ops
    return sum(1 for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None)


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One variant's row."""
    cfg = runner_config(
        "ppo",
        [
            f"ppo/preset={args.preset}",
            f"hardware.device={args.device}",
            "curriculum.name=none",
            f"env.start_level={args.level}",
            *([f"env.num_envs={args.num_envs}"] if args.num_envs else []),
            *VARIANTS[name],
        ],
    )
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    envs, base = make_training_env(cfg, device)
    net = build_policy(cfg, base, device)
    num_envs, num_steps = int(cfg.env.num_envs), int(cfg.ppo.num_steps)
    num_actions = int(base.single_action_space.n)
    use_mask = uses_action_mask(cfg)
    obs, _ = envs.reset(seed=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=float(cfg.ppo.learning_rate), eps=1e-5)
    generator = torch.Generator(device=device).manual_seed(0)
    rollout = RolloutBuffer(num_steps, num_envs, base.single_observation_space, num_actions, device)
    rollout.restart(obs, net)
    sync = cuda_sync_for(device)
    algo = cfg.ppo

    def act_and_update() -> None:
        next_value = collect(rollout, envs, base, net, generator, use_mask)
        advantages, returns = rollout_advantages(rollout, next_value, algo)
        optimise(net, optimizer, rollout, advantages, returns, algo, generator, use_mask)

    first = time_call(act_and_update, warmup=0, repeats=1, sync=sync).median  # compiles every shape
    starts = torch.ones(num_envs, dtype=torch.bool, device=device)
    launches = launches_per_act(net, rollout.next_obs, net.initial_state(num_envs, device), starts)
    rollout_s = time_call(
        lambda: collect(rollout, envs, base, net, generator, use_mask), 1, args.repeats, sync
    ).median
    advantages = torch.zeros_like(rollout.rewards)
    returns = torch.zeros_like(rollout.rewards)
    update_s = time_call(
        lambda: optimise(net, optimizer, rollout, advantages, returns, algo, generator, use_mask),
        0,
        args.repeats,
        sync,
    ).median

    def random_steps() -> None:  # uniform legal moves, drawn as the rollout draws them (no host sync)
        for _ in range(num_steps):
            logits = masked_logits(torch.zeros(num_envs, num_actions, device=device), base.action_masks())
            envs.step(sample_actions(logits, generator)[0])

    env_s = time_call(random_steps, 1, args.repeats, sync).median
    batch = num_envs * num_steps
    policy = cfg.policy
    row = {
        "variant": name,
        "policy": f"{policy.kind} c{policy.channels} x{policy.iterations}",
        "envs": num_envs,
        "env": batch / env_s,
        "rollout": batch / rollout_s,
        "update": batch / update_s,
        "train": batch / (rollout_s + update_s),
        "rollout_share": rollout_s / (rollout_s + update_s),
        "launches_per_act": launches,
        "first_call_s": first,
    }
    if device.type == "cuda":
        row["rollout_syncs"] = host_syncs(lambda: collect(rollout, envs, base, net, generator, use_mask))
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="maze8")
    parser.add_argument("--level", type=int, default=5, help="ladder index to play (maze8: 5 is 8x8)")
    parser.add_argument("--num-envs", type=int, default=0, help="0: the preset's")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="folder for ppo_throughput.json")
    parser.add_argument("--record", action="store_true", help="also append the table to docs/benchmarks.md")
    args = parser.parse_args()
    register_ppo_config()
    bench = Benchmark(f"runners.ppo throughput, {args.preset} settings at level {args.level}", args.device)
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"--variants: {name!r} is not one of {list(VARIANTS)}")
        started = time.perf_counter()
        bench.add(**measure(name, args))
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    bench.report(record=args.record)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ppo_throughput.json").write_text(json.dumps(bench.rows, indent=2))


if __name__ == "__main__":
    main()
