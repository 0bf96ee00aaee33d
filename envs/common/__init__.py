"""Pieces shared by every task family: the Task contract, the native torch vector-env base and its
Stable-Baselines3 adapter. Devices, seeding and checkpoints live in :mod:`foundation`."""

from envs.common.task import LevelLadder, SupervisedBatch, Task

__all__ = ["LevelLadder", "SupervisedBatch", "Task"]
