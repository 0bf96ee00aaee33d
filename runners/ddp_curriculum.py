"""The run's curriculum under DDP: every rank learns from every rank's episodes and moves in step.

Each rank plays its own envs (its own seed), so on its own a rank's curriculum would see a 1/N sample of
the run's outcomes and could advance at another step, or to another level, than its neighbours. A
:class:`SharedCurriculum` keeps the outcomes a rank records in a local buffer (tensor ops, as
:meth:`curricula.Curriculum.record` promises) and, at the loop's clock tick (:meth:`advance`, which every
rank calls once per optimiser step) or after an evaluation (:meth:`sync`), gathers the buffers of all
ranks and feeds the same outcomes, in rank order, to every rank's statistics and schedule. The ranks
start from the same schedule state and see the same outcomes, so their levels, probabilities and knobs
stay equal; only the generator that draws each rank's levels is the rank's own.

An outcome counts one tick later than in a single process (at the next ``advance`` rather than at once),
which is the price of one gather per step instead of one per env step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

from curricula import Curriculum
from curricula.schedules import Schedule
from runners.ddp import DistInfo


class SharedCurriculum(Curriculum):
    """A :class:`curricula.Curriculum` whose recorded outcomes are those of every rank of the run."""

    def __init__(
        self,
        schedule: Schedule,
        info: DistInfo,
        seed: int | None = None,
        level_names: Sequence[str] | None = None,
    ):
        super().__init__(schedule, info.device, seed, level_names)
        self.info = info
        self._pending: list[torch.Tensor] = []  # (3, n) rows: level, success, done

    def record(self, levels: torch.Tensor, success: torch.Tensor, done: torch.Tensor | None = None) -> None:
        """Keep the outcomes until the next :meth:`sync` (tensor ops only, nothing reaches the host)."""
        levels = levels.to(self.device, torch.long).reshape(-1)
        success = success.to(self.device, torch.long).reshape(-1)
        done = torch.ones_like(success) if done is None else done.to(self.device, torch.long).reshape(-1)
        self._pending.append(torch.stack([levels, success, done]))

    def sync(self) -> None:
        """Gather every rank's pending outcomes and record them all on every rank (a collective: all ranks
        call it at the same points).

        Nothing is exchanged when this rank recorded nothing since the last sync: the ranks run the same
        schedule (the same RL steps and evaluations, each recording at least one episode), so then none
        did, and a supervised step pays no collective and no host sync for the curriculum.
        """
        if not self._pending:
            return
        local = torch.cat(self._pending, dim=1)
        self._pending = []
        local = local.to(self.device)
        if not self.info.distributed:
            parts = [local]
        else:
            size = torch.tensor([local.shape[1]], device=self.device)
            sizes = [torch.zeros_like(size) for _ in range(self.info.world_size)]
            dist.all_gather(sizes, size)
            counts = [int(s) for s in sizes]
            if max(counts) == 0:
                return
            padded = torch.zeros(3, max(counts), dtype=torch.long, device=self.device)
            padded[:, : local.shape[1]] = local
            gathered = [torch.empty_like(padded) for _ in counts]
            dist.all_gather(gathered, padded)
            parts = [g[:, :n] for g, n in zip(gathered, counts, strict=True)]
        outcomes = torch.cat(parts, dim=1)
        if outcomes.shape[1]:
            super().record(outcomes[0], outcomes[1].bool(), outcomes[2].bool())

    def advance(self, steps: int = 1) -> None:
        """Record the run's outcomes since the last tick, then move the clock."""
        self.sync()
        super().advance(steps)
