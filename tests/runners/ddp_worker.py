"""A process of the two-process DDP test: what torchrun would start, run through the maze runner."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def ddp_worker(rank: int, world_size: int, port: int, run_dir: str) -> None:
    """Join a gloo group as ``rank``, train the tiny maze config (supervised and RL steps) with
    hardware=ddp, and save the rank's models."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    from runners import maze
    from runners.app import execute
    from tests.runners.helpers import compose_config

    built = {}

    def build(cfg, dist):
        built["experiment"] = maze.build_experiment(cfg, dist)
        built["rank"] = dist.rank
        return built["experiment"]

    rl = ["engine=rl", "engine.interleave.warmup_supervised=1", "engine.interleave.supervised_steps=1"]
    rl += ["engine.rl_envs=4", "engine.rl.rollout_steps=6"]
    cfg = compose_config("maze", ["hardware=ddp", "hardware.device=cpu", "hardware.num_threads=1", *rl])
    execute(cfg, "maze", build, run_dir=run_dir)
    agent = built["experiment"].agent
    state = {
        "backbone": agent.backbone.state_dict(),
        "engine": agent.engine.state_dict(),
        "rank": built["rank"],
    }
    torch.save(state, Path(run_dir).parent / f"rank{rank}.pt")
