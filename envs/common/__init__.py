"""Pieces shared by every task family and by the agents: devices, seeding, the Task contract,
the native torch vector-env base and its Stable-Baselines3 adapter."""

from envs.common.device import resolve_device
from envs.common.seeding import derive_seed, make_generator, rng_state, seed_everything, set_rng_state
from envs.common.task import LevelLadder, SupervisedBatch, Task

__all__ = [
    "LevelLadder",
    "SupervisedBatch",
    "Task",
    "derive_seed",
    "make_generator",
    "resolve_device",
    "rng_state",
    "seed_everything",
    "set_rng_state",
]
