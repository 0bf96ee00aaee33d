"""A batch of generated recall episodes: the full token sequences and where their answers lie."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from envs.common.task import SupervisedBatch


@dataclass(frozen=True)
class EpisodeBatch:
    """Generated episodes, right-padded to a common width ``T``.

    tokens:      (B, T) int64: prompt and answer tokens, then PAD.
    answer_pos:  (B, A) int64: position of each answer token in ``tokens``, in order; ``T`` past the end.
    num_answers: (B,) int64: how many entries of ``answer_pos`` are real.
    length:      (B,) int64: number of valid tokens.
    """

    tokens: torch.Tensor
    answer_pos: torch.Tensor
    num_answers: torch.Tensor
    length: torch.Tensor

    def answer_mask(self) -> torch.Tensor:
        """(B, T) bool, True exactly at answer positions."""
        batch, width = self.tokens.shape
        mask = torch.zeros(batch, width + 1, dtype=torch.bool, device=self.tokens.device)
        mask.scatter_(1, self.answer_pos.clamp(max=width), True)
        return mask[:, :width]

    def supervised(self) -> SupervisedBatch:
        """Next-token batch: ``tokens[:, :-1]`` in, ``tokens[:, 1:]`` out, loss only on answer tokens."""
        return SupervisedBatch(
            self.tokens[:, :-1].contiguous(),
            self.tokens[:, 1:].contiguous(),
            self.answer_mask()[:, 1:].contiguous(),
        )


def answer_positions(
    first: torch.Tensor, count: torch.Tensor, stride: int, max_answers: int, width: int
) -> torch.Tensor:
    """(B, max_answers) positions ``first + stride * i`` for ``i < count``, and ``width`` elsewhere."""
    index = torch.arange(max_answers, device=first.device)
    positions = first.unsqueeze(1) + stride * index
    return torch.where(index < count.unsqueeze(1), positions, torch.full_like(positions, width))


def uniform_below(
    bound: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Integers uniform in [0, bound) with a per-row bound (B,) -> int64 of ``shape`` (B, ...)."""
    u = torch.rand(shape, generator=generator, device=device)
    view = bound.view(-1, *([1] * (len(shape) - 1)))
    return torch.minimum((u * view).long(), view - 1)


def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` along dim 0 through ``index_select`` (much faster on CPU than advanced indexing)."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[1:])
