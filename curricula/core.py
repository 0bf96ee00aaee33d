"""The run's one curriculum: a schedule, its statistics and the generator that draws levels.

``record`` runs on every (vector) env step with tensor ops only; ``summary``/``log`` copy the counters to
the host and are called when the caller logs. The wrappers in this package only translate their env's
outputs into ``record`` calls and apply levels from ``draw`` through the task's ``set_level``; none of
them moves the clock (``advance``), which belongs to the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from curricula.reporting import level_change_line, logger, write_tensorboard
from curricula.schedules import Schedule
from curricula.stats import SuccessStats
from foundation import make_generator, resolve_device, restore_generator


class Curriculum:
    """The run's one curriculum: a schedule, its success statistics and the generator that draws levels.

    Who does what (one owner per piece of state):

    - **recording**: samplers, env wrappers and evaluation call :meth:`record` with the outcomes they saw;
    - **drawing**: env wrappers call :meth:`draw` for the levels of new episodes and write them to their
      env (the env's per-sub-env level tensor is the one place a sub-env's level lives); the supervised
      sampler reads :meth:`probabilities`;
    - **the clock**: only the owner of the training loop calls :meth:`advance`, once per optimiser step
      in the runners (SB3's :class:`curricula.sb3.CurriculumCallback` advances it by SB3's timesteps).
    """

    def __init__(
        self,
        schedule: Schedule,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        level_names: Sequence[str] | None = None,
    ):
        if not isinstance(schedule, Schedule):
            raise TypeError(
                f"A curriculum needs a curricula Schedule, got {type(schedule).__name__}; "
                "build one with curricula.build_schedule(name, num_levels, ...)."
            )
        self.device = resolve_device(device)
        self.schedule = schedule.to(self.device)
        self.num_levels = schedule.num_levels
        names = [str(i) for i in range(self.num_levels)] if level_names is None else list(level_names)
        if len(names) != self.num_levels:
            raise ValueError(
                f"The schedule covers {self.num_levels} levels but the task has {len(names)} ({names}); "
                f"build the schedule with num_levels={len(names)}."
            )
        self.level_names = names
        self.stats = SuccessStats(self.num_levels, schedule.window, self.device)
        self.generator = make_generator(seed, device=self.device)
        self.reported_level = int(self.schedule.level())

    @classmethod
    def ensure(
        cls,
        curriculum: Curriculum | Schedule,
        device: str | torch.device,
        seed: int | None,
        level_names: Sequence[str],
    ) -> Curriculum:
        """``curriculum`` itself (shared with the rest of the run), or a new one around a bare schedule."""
        if isinstance(curriculum, Curriculum):
            if curriculum.num_levels != len(level_names):
                raise ValueError(
                    f"The curriculum covers {curriculum.num_levels} levels but the task has "
                    f"{len(level_names)}; build it over the same task's ladder."
                )
            return curriculum
        return cls(curriculum, device, seed, level_names)

    @property
    def steps(self) -> int:
        """The run's clock: how far :meth:`advance` has moved the schedule."""
        return self.schedule.steps

    def advance(self, steps: int = 1) -> None:
        """Move the clock by ``steps``; staged boundaries and knobs fire here. Only the loop calls this."""
        self.schedule.advance(steps)

    def record(self, levels: torch.Tensor, success: torch.Tensor, done: torch.Tensor | None = None) -> None:
        """Count the episodes that ended: ``levels`` (ladder indices), ``success`` (bool), ``done`` mask
        (None: every entry is a finished episode). Tensor ops only; nothing reaches the host."""
        levels = levels.to(self.device, torch.long)
        success = success.to(self.device, torch.bool)
        done = torch.ones_like(success) if done is None else done.to(self.device, torch.bool)
        self.stats.record(levels, success, done)
        self.schedule.update(self.stats, levels, success, done)

    def draw(self, n: int) -> torch.Tensor:
        """``n`` ladder indices for new episodes, drawn from the schedule with the curriculum's generator."""
        return self.schedule.sample(n, self.generator)

    def probabilities(self) -> torch.Tensor:
        """The schedule's distribution over ladder indices (on the curriculum's device)."""
        return self.schedule.probabilities()

    def level(self) -> int:
        """The schedule's level as a host int (one sync; call at log / eval time)."""
        return int(self.schedule.level())

    def summary(self) -> dict[str, Any]:
        """Host copy of the schedule and statistics (one sync; for logging and reports)."""
        self.schedule.sync()
        return {
            "schedule": self.schedule.name,
            "level": int(self.schedule.level()),
            "level_names": self.level_names,
            "probabilities": self.schedule.probabilities().tolist(),
            "knobs": self.schedule.knobs(),
            "steps": self.schedule.steps,
            **self.stats.summary(),
        }

    def report_level_change(self, step: int | None = None, summary: dict[str, Any] | None = None) -> bool:
        """Log a line if the schedule's level moved since the last report; True if it did."""
        summary = summary or self.summary()
        if summary["level"] == self.reported_level:
            return False
        logger.info(
            level_change_line(summary, self.reported_level, self.schedule.steps if step is None else step)
        )
        self.reported_level = summary["level"]
        return True

    def log(self, writer: Any = None, step: int | None = None) -> dict[str, Any]:
        """Log a level change, write TensorBoard scalars and histogram to ``writer``; return the summary."""
        step = self.schedule.steps if step is None else step
        summary = self.summary()
        self.report_level_change(step, summary)
        if writer is not None:
            write_tensorboard(writer, summary, step)
        return summary

    def state_dict(self) -> dict[str, Any]:
        """Schedule, statistics and generator as plain data and CPU tensors."""
        return {
            "schedule": self.schedule.state_dict(),
            "stats": self.stats.state_dict(),
            "generator": self.generator.get_state(),
            "reported_level": self.reported_level,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` left off (same schedule and ladder)."""
        self.schedule.load_state_dict(state["schedule"])
        self.stats.load_state_dict(state["stats"])
        restore_generator(self.generator, state["generator"], "curriculum")
        self.reported_level = int(state["reported_level"])


class CurriculumReporting:
    """What every curriculum wrapper exposes of its ``curriculum``: summary, TensorBoard logging, state."""

    curriculum: Curriculum

    def summary(self) -> dict[str, Any]:
        """Host copy of the schedule and statistics (one sync)."""
        return self.curriculum.summary()

    def log(self, writer: Any = None, step: int | None = None) -> dict[str, Any]:
        """Log a level change and write TensorBoard scalars/histogram to ``writer``; return the summary."""
        return self.curriculum.log(writer, step)

    def state_dict(self) -> dict[str, Any]:
        return self.curriculum.state_dict()
