"""Supervised batches whose levels follow a curriculum schedule, so backbone and env training agree.

``CurriculumSampler.sample_batch`` has the signature of ``Task.sample_batch``: it splits the batch by
level according to the curriculum's distribution, draws each part with ``task.sample_batch(level=...)``
and joins them with ``SupervisedBatch.concat`` (right-padding; padding never counts in the loss).
``last_levels`` holds each row's ladder index. The sampler only reads the curriculum: it never moves its
clock.
"""

from __future__ import annotations

from typing import Any

import torch

from curricula.core import Curriculum
from curricula.schedules import Schedule
from envs.common.task import SupervisedBatch, Task
from foundation import make_generator, resolve_device


class CurriculumSampler:
    """Draws supervised batches at levels sampled from ``curriculum``.

    ``curriculum`` is the run's :class:`Curriculum` (shared with the env wrapper and evaluation, so it
    moves with the agent's success) or a bare schedule. ``refresh_every`` batches the sampler re-reads
    the distribution (one small host copy; raise it when the curriculum lives on a GPU).
    """

    def __init__(
        self,
        task: Task,
        curriculum: Curriculum | Schedule,
        seed: int | None = None,
        refresh_every: int = 1,
    ):
        if not isinstance(task, Task):
            raise TypeError(f"CurriculumSampler needs a MindGym Task, got {type(task).__name__}.")
        if curriculum.num_levels != task.num_levels:
            raise ValueError(
                f"The schedule covers {curriculum.num_levels} levels but the task has {task.num_levels}; "
                f"build the schedule with num_levels={task.num_levels}."
            )
        if not isinstance(refresh_every, int) or refresh_every < 1:
            raise ValueError(f"refresh_every must be a positive int (batches), got {refresh_every!r}.")
        self.task = task
        self.curriculum = Curriculum.ensure(curriculum, "cpu", seed, task.ladder.names)
        self.refresh_every = refresh_every
        self.generator = make_generator(seed)
        self.pad_id = int(getattr(task, "pad_id", 0))
        self.batches = 0
        self._probabilities: torch.Tensor | None = None
        self.last_levels: torch.Tensor | None = None

    def level_counts(self, batch_size: int) -> torch.Tensor:
        """How many rows of a ``batch_size`` batch go to each level (drawn on the host)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        if self._probabilities is None or self.batches % self.refresh_every == 0:
            self._probabilities = self.curriculum.probabilities().detach().to("cpu", torch.float64)
        levels = torch.multinomial(
            self._probabilities, batch_size, replacement=True, generator=self.generator
        )
        return torch.bincount(levels, minlength=self.task.num_levels)

    def sample_batch(
        self,
        batch_size: int,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
    ) -> SupervisedBatch:
        """A batch whose rows' levels follow the schedule; rows are grouped by level (see ``last_levels``)."""
        counts = self.level_counts(batch_size)
        device = resolve_device(device) if device is not None else None
        parts = [
            self.task.sample_batch(n, device=device, generator=generator, level=level)
            for level, n in enumerate(counts.tolist())
            if n > 0
        ]
        self.batches += 1
        self.last_levels = torch.repeat_interleave(torch.arange(self.task.num_levels), counts).to(
            parts[0].tokens.device
        )
        return SupervisedBatch.concat(parts, self.pad_id)

    def state_dict(self) -> dict[str, Any]:
        """The sampler's generator and batch count (the schedule saves its own state)."""
        return {"generator": self.generator.get_state(), "batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.batches = int(state["batches"])
        self._probabilities = None
