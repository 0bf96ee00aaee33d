"""Supervised batches whose levels follow a curriculum schedule, so backbone and env training agree.

``CurriculumSampler.sample_batch`` has the signature of ``Task.sample_batch``: it splits the batch by
level according to the curriculum's distribution, draws each part with ``task.sample_batch(level=...)``
and joins them with ``SupervisedBatch.concat`` (right-padding; padding never counts in the loss).
``last_levels`` holds each row's ladder index, on the host: putting it on the GPU would be a host-to-device
copy, which waits for every queued kernel, once a step. The sampler only reads the curriculum: it never
moves its clock.

With ``prefetch=k`` each level's rows are drawn ``k`` batches at a time and handed out in order. A task's
generator pays per call, not per row (a 12x12 maze draw is ~6,800 small kernels and 3 host reads whatever
its size, 24 kernels per DFS sweep), so on a GPU this divides the data cost by ``k``; every row is still
fresh and used once. Between draws a batch is a view of the draw's rows: no kernel, no host read. A
checkpoint keeps the generator state each reservoir was drawn from, so a resumed run redraws it and
continues bit-exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from curricula.core import Curriculum
from curricula.schedules import Schedule
from envs.common.task import SupervisedBatch, Task
from foundation import make_generator, resolve_device, restore_generator


@dataclass
class _Reservoir:
    """Rows of one level drawn in one call, handed out in order; ``state`` is the generator state they
    were drawn from (enough to redraw them on resume)."""

    batch: SupervisedBatch
    widths: list[int]  # each row's length without trailing padding (read to the host once per draw)
    state: torch.Tensor
    generator_device: str
    used: int = 0

    @property
    def left(self) -> int:
        return len(self.widths) - self.used

    def take(self, n: int) -> SupervisedBatch:
        rows = slice(self.used, self.used + n)
        width = max(self.widths[rows])
        self.used += n
        parts = (self.batch.tokens, self.batch.targets, self.batch.loss_mask)
        return SupervisedBatch(*(part[rows, :width] for part in parts))


class CurriculumSampler:
    """Draws supervised batches at levels sampled from ``curriculum``.

    ``curriculum`` is the run's :class:`Curriculum` (shared with the env wrapper and evaluation, so it
    moves with the agent's success) or a bare schedule. ``refresh_every`` batches the sampler re-reads
    the distribution (one small host copy; raise it when the curriculum lives on a GPU). ``prefetch``
    batches' worth of rows are drawn per level at once when a generator is passed (see the module doc).
    """

    def __init__(
        self,
        task: Task,
        curriculum: Curriculum | Schedule,
        seed: int | None = None,
        refresh_every: int = 1,
        prefetch: int = 1,
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
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(
                f"prefetch must be a positive int (batches drawn per level at once), got {prefetch!r}."
            )
        self.task = task
        self.prefetch = prefetch
        self.reservoirs: dict[int, _Reservoir] = {}
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
            self._rows(level, n, batch_size, device, generator)
            for level, n in enumerate(counts.tolist())
            if n > 0
        ]
        self.batches += 1
        self.last_levels = torch.repeat_interleave(torch.arange(self.task.num_levels), counts)
        # one level's rows are handed out as they are (a reservoir's rows are views; the trainer's padding
        # makes the copy a compiled step needs), several are joined into one right-padded batch
        return parts[0] if len(parts) == 1 else SupervisedBatch.concat(parts, self.pad_id)

    def _rows(
        self,
        level: int,
        n: int,
        batch_size: int,
        device: torch.device | None,
        generator: torch.Generator | None,
    ) -> SupervisedBatch:
        """``n`` fresh rows of ``level``: straight from the task, or from the level's reservoir."""
        if self.prefetch == 1 or generator is None:
            return self.task.sample_batch(n, device=device, generator=generator, level=level)
        reservoir = self.reservoirs.get(level)
        if reservoir is None or reservoir.left < n:
            reservoir = self._draw(level, max(n, self.prefetch * batch_size), device, generator)
            self.reservoirs[level] = reservoir
        return reservoir.take(n)

    def _draw(
        self, level: int, rows: int, device: torch.device | None, generator: torch.Generator
    ) -> _Reservoir:
        state = generator.get_state()
        batch = self.task.sample_batch(rows, device=device, generator=generator, level=level)
        mask = batch.loss_mask if batch.loss_mask.dim() == 2 else batch.loss_mask.any(dim=-1)
        used = mask | (batch.tokens != self.pad_id)
        positions = torch.arange(1, used.shape[1] + 1, device=used.device)
        widths = (used * positions).amax(dim=1).clamp_min(1).tolist()
        return _Reservoir(batch, widths, state, str(generator.device))

    def state_dict(self) -> dict[str, Any]:
        """The sampler's generator, batch count and, per reservoir, where it was drawn from and how much
        of it is used (the schedule saves its own state)."""
        reservoirs = {
            str(level): {
                "state": r.state,
                "rows": len(r.widths),
                "used": r.used,
                "device": str(r.batch.tokens.device),
                "generator_device": r.generator_device,
            }
            for level, r in self.reservoirs.items()
        }
        return {"generator": self.generator.get_state(), "batches": self.batches, "reservoirs": reservoirs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore_generator(self.generator, state["generator"], "sampler")
        self.batches = int(state["batches"])
        self._probabilities = None
        self.reservoirs = {}
        for level, saved in state.get("reservoirs", {}).items():
            # without CUDA a CPU generator stands in, and restoring a CUDA state into it fails clearly
            device = saved["generator_device"] if torch.cuda.is_available() else "cpu"
            generator = torch.Generator(device=device)
            restore_generator(generator, saved["state"], f"sampler reservoir {level}")
            reservoir = self._draw(int(level), int(saved["rows"]), torch.device(saved["device"]), generator)
            reservoir.used = int(saved["used"])
            self.reservoirs[int(level)] = reservoir
