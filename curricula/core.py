"""The part every curriculum wrapper shares: a schedule, its statistics, a generator and per-env levels.

``record`` runs on every (vector) env step with tensor ops only; ``summary``/``log`` copy the counters to
the host and are called when the caller logs. The wrappers in this package only translate their env's
outputs into ``record`` calls and apply the returned levels through the task's ``set_level``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from curricula.reporting import level_change_line, logger, write_tensorboard
from curricula.schedules import Schedule
from curricula.stats import SuccessStats
from foundation import make_generator, resolve_device


class Curriculum:
    """A schedule over ``num_envs`` sub-envs on ``device``: which level each sub-env plays next."""

    def __init__(
        self,
        schedule: Schedule,
        num_envs: int = 1,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        level_names: Sequence[str] | None = None,
    ):
        if not isinstance(schedule, Schedule):
            raise TypeError(
                f"A curriculum needs a curricula Schedule, got {type(schedule).__name__}; "
                "build one with curricula.build_schedule(name, num_levels, ...)."
            )
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}.")
        self.device = resolve_device(device)
        self.schedule = schedule.to(self.device)
        self.num_envs = num_envs
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
        self.env_levels = self.schedule.sample(num_envs, self.generator)
        self.reported_level = int(self.schedule.level())

    def tick(self, steps: int) -> None:
        """Count environment steps (staged schedules move on them)."""
        self.schedule.tick(steps)

    def record(self, levels: torch.Tensor, success: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        """Count the episodes that ended (``done``) and draw the next level of each of those sub-envs.

        ``levels``: the ladder index each sub-env's episode ran at; ``success``: bool outcome. Returns the
        (num_envs,) levels the sub-envs should play next (unchanged where ``done`` is False).
        """
        self.stats.record(levels, success, done)
        self.schedule.update(self.stats, levels, success, done)
        drawn = self.schedule.sample(self.num_envs, self.generator)
        self.env_levels = torch.where(done, drawn, self.env_levels)
        return self.env_levels

    def summary(self) -> dict[str, Any]:
        """Host copy of the schedule and statistics (one sync; for logging and reports)."""
        self.schedule.sync()
        env_levels = self.env_levels.tolist()
        return {
            "schedule": self.schedule.name,
            "level": int(self.schedule.level()),
            "level_names": self.level_names,
            "probabilities": self.schedule.probabilities().tolist(),
            "env_levels": env_levels,
            "mean_level": sum(env_levels) / len(env_levels),
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
        """Schedule, statistics, generator and per-env levels as plain data and CPU tensors."""
        return {
            "schedule": self.schedule.state_dict(),
            "stats": self.stats.state_dict(),
            "generator": self.generator.get_state(),
            "env_levels": self.env_levels.cpu().clone(),
            "reported_level": self.reported_level,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where :meth:`state_dict` left off (same schedule, ladder and num_envs)."""
        if state["env_levels"].shape != (self.num_envs,):
            raise ValueError(
                f"Saved curriculum has {state['env_levels'].shape[0]} sub-envs, this one {self.num_envs}; "
                "resume with the same num_envs."
            )
        self.schedule.load_state_dict(state["schedule"])
        self.stats.load_state_dict(state["stats"])
        self.generator.set_state(state["generator"])
        self.env_levels = state["env_levels"].to(self.device).clone()
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
