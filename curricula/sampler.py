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

With ``bucket=True`` as well, a draw's rows are handed out by length: sorted by their width (a 12x12 maze
row is 150 prefix tokens plus its path, 151-269 tokens), cut into batches of ``batch_size`` and the
batches shuffled (from the draw's generator, so a resumed run shuffles them the same way). A batch is
then padded to the longest of rows of similar length, not to the longest of 512 random rows (on 12x12
about 4% of a compiled step's tokens are padding at ``pad_multiple=16`` instead of 25%). Every row is
still used once per draw. Sorted batches differ in how many loss positions they hold, and the loss is a
mean over a batch's positions, so each batch carries ``loss_weight`` / ``accuracy_weight`` (its positions
over the draw's mean batch's) and the trainer scales its loss by them: over a draw, each position weighs
what it weighs in random batches. A batch then gathers its rows (one copy) instead of viewing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # length bucketing (``bucket_rows`` > 0): rows are handed out in the order ``order`` (a device index
    # tensor), and ``widths`` / ``positions`` follow that order; ``positions`` holds each row's loss
    # positions, all horizons and the next-token ones (for the batches' weights)
    bucket_rows: int = 0
    order: torch.Tensor | None = None
    positions: tuple[list[int], list[int]] = field(default_factory=lambda: ([], []))

    @property
    def left(self) -> int:
        return len(self.widths) - self.used

    def mean_positions(self) -> tuple[float, float]:
        """Loss positions of the draw's mean row: (all horizons, next token)."""
        return tuple(sum(counts) / len(counts) for counts in self.positions)  # type: ignore[return-value]

    def take(self, n: int) -> tuple[SupervisedBatch, tuple[int, int]]:
        """The next ``n`` rows trimmed to their longest, and their loss positions (all horizons, next
        token; zeros without bucketing, where nothing reads them)."""
        rows = slice(self.used, self.used + n)
        width = max(self.widths[rows])
        self.used += n
        parts = (self.batch.tokens, self.batch.targets, self.batch.loss_mask)
        if self.order is None:
            return SupervisedBatch(*(part[rows, :width] for part in parts)), (0, 0)
        index = self.order[rows]
        batch = SupervisedBatch(*(part[:, :width].index_select(0, index) for part in parts))
        return batch, (sum(self.positions[0][rows]), sum(self.positions[1][rows]))


def bucket_order(widths: torch.Tensor, bucket_rows: int, generator: torch.Generator) -> torch.Tensor:
    """An order of the rows of ``widths`` (one width each) that hands them out in batches of
    ``bucket_rows`` rows of similar width: the rows sorted by width (stably), cut into batches, the full
    batches shuffled with ``generator`` (when the rows do not fill the last batch, its longest rows come
    last, a short batch). Every row appears once; on the device of ``widths``, with no host read."""
    if bucket_rows < 1:
        raise ValueError(f"bucket_rows must be a positive int (rows per batch), got {bucket_rows!r}.")
    rows, device = widths.shape[0], widths.device
    full = rows // bucket_rows
    by_width = torch.sort(widths, stable=True).indices
    shuffled = torch.randperm(full, generator=generator, device=generator.device).to(device)
    place = torch.full((full + 1,), full, dtype=torch.long, device=device)  # the short batch stays last
    place[shuffled] = torch.arange(full, device=device)  # where each sorted full batch goes
    slot = torch.arange(rows, device=device)
    return by_width[torch.argsort(place[slot // bucket_rows] * rows + slot)]


class CurriculumSampler:
    """Draws supervised batches at levels sampled from ``curriculum``.

    ``curriculum`` is the run's :class:`Curriculum` (shared with the env wrapper and evaluation, so it
    moves with the agent's success) or a bare schedule. ``refresh_every`` batches the sampler re-reads
    the distribution (one small host copy; raise it when the curriculum lives on a GPU). ``prefetch``
    batches' worth of rows are drawn per level at once when a generator is passed, and with ``bucket``
    handed out in batches of rows of similar length, weighted (see the module doc).
    """

    def __init__(
        self,
        task: Task,
        curriculum: Curriculum | Schedule,
        seed: int | None = None,
        refresh_every: int = 1,
        prefetch: int = 1,
        bucket: bool = False,
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
        if not isinstance(bucket, bool):
            raise ValueError(
                f"bucket must be True or False (batches of rows of similar length), got {bucket!r}."
            )
        self.task = task
        self.prefetch = prefetch
        self.bucket = bucket
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
        taken = [
            self._rows(level, n, batch_size, device, generator)
            for level, n in enumerate(counts.tolist())
            if n > 0
        ]
        self.batches += 1
        self.last_levels = torch.repeat_interleave(torch.arange(self.task.num_levels), counts)
        # one level's rows are handed out as they are (a reservoir's rows are views; the trainer's padding
        # makes the copy a compiled step needs), several are joined into one right-padded batch
        parts = [part for part, _ in taken]
        batch = parts[0] if len(parts) == 1 else SupervisedBatch.concat(parts, self.pad_id)
        # a bucketed batch weighs the loss positions it holds over those as many mean rows of its draws
        # hold (a reservoir restored from an unbucketed checkpoint has no counts: the batch stays unweighted)
        if any(counts is None for _, counts in taken):
            return batch
        held, held_next, expected, expected_next = (sum(c) for c in zip(*(c for _, c in taken), strict=True))
        loss_weight = held / expected if expected > 0 else 1.0
        accuracy_weight = held_next / expected_next if expected_next > 0 else 1.0
        return SupervisedBatch(*batch.parts(), loss_weight, accuracy_weight)

    def _rows(
        self,
        level: int,
        n: int,
        batch_size: int,
        device: torch.device | None,
        generator: torch.Generator | None,
    ) -> tuple[SupervisedBatch, tuple[float, float, float, float] | None]:
        """``n`` fresh rows of ``level``: straight from the task, or from the level's reservoir; with
        bucketing also their loss positions and those ``n`` mean rows of the draw hold (all horizons, next
        token, then the same expected), else None."""
        if self.prefetch == 1 or generator is None:
            return self.task.sample_batch(n, device=device, generator=generator, level=level), None
        reservoir = self.reservoirs.get(level)
        if reservoir is None or reservoir.left < n:
            bucket_rows = batch_size if self.bucket else 0
            reservoir = self._draw(level, max(n, self.prefetch * batch_size), device, generator, bucket_rows)
            self.reservoirs[level] = reservoir
        batch, (held, held_next) = reservoir.take(n)
        if reservoir.order is None:
            return batch, None
        mean, mean_next = reservoir.mean_positions()
        return batch, (held, held_next, n * mean, n * mean_next)

    def _draw(
        self,
        level: int,
        rows: int,
        device: torch.device | None,
        generator: torch.Generator,
        bucket_rows: int = 0,
    ) -> _Reservoir:
        """``rows`` fresh rows of ``level`` and each one's width; with ``bucket_rows`` also the order that
        hands them out in batches of that many rows of similar width, shuffled (one host read either way)."""
        state = generator.get_state()
        batch = self.task.sample_batch(rows, device=device, generator=generator, level=level)
        mask = batch.loss_mask if batch.loss_mask.dim() == 2 else batch.loss_mask.any(dim=-1)
        used = mask | (batch.tokens != self.pad_id)
        positions = torch.arange(1, used.shape[1] + 1, device=used.device)
        widths = (used * positions).amax(dim=1).clamp_min(1)
        if bucket_rows == 0:
            return _Reservoir(batch, widths.tolist(), state, str(generator.device))
        order = bucket_order(widths, bucket_rows, generator)
        next_token = batch.loss_mask if batch.loss_mask.dim() == 2 else batch.loss_mask[..., 0]
        columns = torch.stack([widths, batch.loss_mask.flatten(1).sum(1), next_token.sum(1)])
        ordered_widths, counts, counts_next = columns[:, order].tolist()
        reservoir = _Reservoir(batch, ordered_widths, state, str(generator.device), bucket_rows=bucket_rows)
        reservoir.order, reservoir.positions = order, (counts, counts_next)
        return reservoir

    def state_dict(self) -> dict[str, Any]:
        """The sampler's generator, batch count and, per reservoir, where it was drawn from, how much of it
        is used and its batches' rows when bucketed (the schedule saves its own state)."""
        reservoirs = {
            str(level): {
                "state": r.state,
                "rows": len(r.widths),
                "used": r.used,
                "device": str(r.batch.tokens.device),
                "generator_device": r.generator_device,
                "bucket_rows": r.bucket_rows,
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
            # redrawn as it was drawn (bucketed or not, whatever this sampler's ``bucket``), so the rows
            # still to come are the ones the saved run had not used yet
            bucket_rows = int(saved.get("bucket_rows", 0))
            where = torch.device(saved["device"])
            reservoir = self._draw(int(level), int(saved["rows"]), where, generator, bucket_rows)
            reservoir.used = int(saved["used"])
            self.reservoirs[int(level)] = reservoir
