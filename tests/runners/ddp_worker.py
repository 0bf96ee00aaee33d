"""Processes of the two-process DDP tests: what torchrun would start, on gloo and the CPU."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

RL = ["engine=rl", "engine.interleave.warmup_supervised=1", "engine.interleave.supervised_steps=1"]
RL += ["engine.rl_envs=4", "engine.rl.rollout_steps=6"]


def join(rank: int, world_size: int, port: int) -> None:
    """The environment torchrun gives each process."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )


def runner_worker(
    rank: int,
    world_size: int,
    port: int,
    runner: str,
    overrides: list[str],
    run_dir: str,
    out: str,
    interrupt_at: int | None = None,
) -> None:
    """Train ``runner``'s tiny config with hardware=ddp as ``rank``, then save the rank's models and
    curriculum to ``out/rank<k>.pt``. ``interrupt_at``: rank 0 gets a Ctrl-C during that step."""
    join(rank, world_size, port)
    from runners import generation, maze, recall
    from runners.app import execute
    from tests.runners.helpers import compose_config

    module = {"maze": maze, "recall": recall, "generation": generation}[runner]
    built = {}

    def build(cfg, dist):
        experiment = module.build_experiment(cfg, dist)
        if interrupt_at is not None and dist.rank == 0:
            train_step = experiment.train_step

            def interrupted(step):
                if step == interrupt_at:
                    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
                return train_step(step)

            experiment.train_step = interrupted
        built["experiment"], built["rank"] = experiment, dist.rank
        return experiment

    ddp = ["hardware=ddp", "hardware.device=cpu", "hardware.num_threads=1"]
    cfg = compose_config(runner, [*ddp, *overrides])
    try:
        execute(cfg, runner, build, run_dir=run_dir)
    except KeyboardInterrupt:
        if interrupt_at is None:
            raise
    experiment = built["experiment"]
    curriculum = experiment.curriculum.state_dict()
    curriculum.pop("generator")  # each rank draws its own levels
    state = {
        "backbone": experiment.agent.backbone.state_dict(),
        "engine": experiment.agent.engine.state_dict(),
        "curriculum": curriculum,
        "curriculum_steps": experiment.curriculum.steps,
        "rank": built["rank"],
    }
    torch.save(state, Path(out) / f"rank{rank}.pt")


def curriculum_worker(rank: int, world_size: int, port: int, successes: list[bool], out: str) -> None:
    """Record ``successes[rank]``-only episodes (8 at level 0) into a SharedCurriculum, tick once, and save
    its state to ``out/rank<k>.pt``."""
    join(rank, world_size, port)
    from curricula import AdaptiveSchedule
    from runners.ddp import setup_distributed, teardown_distributed
    from runners.ddp_curriculum import SharedCurriculum

    info = setup_distributed(True, "cpu", "gloo")
    try:
        curriculum = SharedCurriculum(AdaptiveSchedule(3, threshold=0.8, min_episodes=8), info, seed=rank)
        levels = torch.zeros(8, dtype=torch.long)
        curriculum.record(levels[:5], torch.full((5,), successes[rank]))  # two calls in one step
        curriculum.record(levels[5:], torch.full((3,), successes[rank]))
        curriculum.advance(1)
        state = curriculum.state_dict()
        state.pop("generator")
        torch.save({"state": state, "level": curriculum.level()}, Path(out) / f"rank{rank}.pt")
    finally:
        teardown_distributed()
