"""Curricula: schedules that move a task's level as the agent improves, and the wrappers that apply them.

    from curricula import AdaptiveSchedule, CurriculumVectorWrapper
    env = CurriculumVectorWrapper(MazeVectorEnv(num_envs=1024, device="cuda"), AdaptiveSchedule(num_levels=6))

Schedules: ``StagedSchedule`` (step/episode boundaries plus knobs such as plasticity), ``AdaptiveSchedule``,
``MixtureSchedule``, ``LearningProgressSchedule``, ``FixedSchedule``; ``build_schedule(name, num_levels,
**kwargs)`` builds one from config. Wrappers: ``CurriculumWrapper`` (one Gymnasium env),
``CurriculumVectorWrapper`` (native or Gymnasium vector envs), ``CurriculumVecEnv`` + ``CurriculumCallback``
(Stable-Baselines3) and ``CurriculumSampler`` (supervised batches). See docs/curricula.md.
"""

from curricula.adaptive import AdaptiveSchedule, FrontierSchedule, MixtureSchedule
from curricula.core import Curriculum
from curricula.env_wrapper import CurriculumWrapper
from curricula.factory import SCHEDULES, build_schedule
from curricula.learning_progress import LearningProgressSchedule
from curricula.sampler import CurriculumSampler
from curricula.schedules import FixedSchedule, Schedule, StagedSchedule, apply_knobs
from curricula.stats import SuccessStats
from curricula.vector_wrapper import CurriculumVectorWrapper

__all__ = [
    "SCHEDULES",
    "AdaptiveSchedule",
    "Curriculum",
    "CurriculumSampler",
    "CurriculumVectorWrapper",
    "CurriculumWrapper",
    "FixedSchedule",
    "FrontierSchedule",
    "LearningProgressSchedule",
    "MixtureSchedule",
    "Schedule",
    "StagedSchedule",
    "SuccessStats",
    "apply_knobs",
    "build_schedule",
]
