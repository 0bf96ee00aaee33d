"""The recall family: copy, repeat-copy, associative recall (MQAR) and needle-in-a-haystack.

RecallTask (levels, generator, oracle, supervised sampler), RecallEnv (Gymnasium, ``sequence`` and
``stream`` modes), RecallVectorEnv (torch, any device) and grid evaluation with JSON + PNG heatmaps.
"""

from envs.recall.associative import AssociativeLevel
from envs.recall.copy_task import CopyLevel, RepeatCopyLevel
from envs.recall.env import MODES, RecallEnv
from envs.recall.evaluate import GridReport, associative_grid, evaluate_grid, ladder_grid, needle_grid
from envs.recall.families import FAMILIES
from envs.recall.needle import NeedleLevel
from envs.recall.task import RecallTask
from envs.recall.vector import RecallVectorEnv

__all__ = [
    "FAMILIES",
    "MODES",
    "AssociativeLevel",
    "CopyLevel",
    "GridReport",
    "NeedleLevel",
    "RecallEnv",
    "RecallTask",
    "RecallVectorEnv",
    "RepeatCopyLevel",
    "associative_grid",
    "evaluate_grid",
    "ladder_grid",
    "needle_grid",
]
