"""The validity-aware loss: moves into walls are masked before the log-softmax while training."""

from __future__ import annotations

import pytest
import torch

from agents.training.supervised import allowed_logits, masked_cross_entropy
from envs.maze import MazeTask
from envs.maze import tokens as tok
from envs.maze.grid import COL_STEP, ROW_STEP


@pytest.fixture(scope="module")
def batch_and_task():
    task = MazeTask.from_spec(["5x5", "8x8"])
    parts = [task.sample_batch(16, generator=torch.Generator().manual_seed(i), level=i) for i in range(2)]
    from envs.common.task import SupervisedBatch

    return SupervisedBatch.concat(parts, tok.PAD), task


def test_the_rule_allows_every_oracle_move_and_forbids_exactly_the_walls(batch_and_task):
    batch, task = batch_and_task
    allowed = task.allowed_targets(batch.tokens)
    assert allowed.gather(-1, batch.targets[..., None]).squeeze(-1)[batch.loss_mask].all()
    # replay one row by hand: at each move position the allowed moves are the open passages of the cell
    row = batch.tokens[20]
    size = 8
    sep = int((row == tok.SEP).nonzero()[0])
    cell = int(row[sep - 4] - tok.ROW0) * size + int(row[sep - 3] - tok.COL0)
    for t in range(sep, int(batch.loss_mask[20].nonzero().max()) + 1):
        if t > sep:
            a = int(row[t]) - tok.MOVE0
            cell = (cell // size + ROW_STEP[a]) * size + cell % size + COL_STEP[a]
        passages = int(row[cell]) - tok.CELL0
        expected = [bool((passages >> a) & 1) for a in range(4)]
        assert allowed[20, t, tok.MOVE0 : tok.MOVE0 + 4].tolist() == expected
    assert allowed[20, :sep].all() and allowed[0, : 25 + 4].all()  # the maze prefix is never constrained


def test_no_probability_on_invalid_moves_and_no_gradient_through_them(batch_and_task):
    batch, task = batch_and_task
    allowed = task.allowed_targets(batch.tokens)
    logits = torch.randn(*batch.tokens.shape, tok.VOCAB_SIZE, requires_grad=True)
    probs = allowed_logits(logits, allowed).softmax(-1)
    assert (probs[~allowed] == 0).all()
    assert ((~allowed).sum() > 0) and torch.isfinite(probs).all()
    for smoothing in (0.0, 0.1):
        loss = masked_cross_entropy(logits, batch.targets, batch.loss_mask, smoothing, allowed)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and (grad[~allowed] == 0).all()
        plain = masked_cross_entropy(logits, batch.targets, batch.loss_mask, smoothing)
        assert loss < plain  # mass the plain loss spends on walls goes to the allowed moves


def test_all_allowed_equals_the_plain_loss(batch_and_task):
    batch, _ = batch_and_task
    logits = torch.randn(*batch.tokens.shape, tok.VOCAB_SIZE)
    everything = torch.ones_like(logits, dtype=torch.bool)
    for smoothing in (0.0, 0.1):
        torch.testing.assert_close(
            masked_cross_entropy(logits, batch.targets, batch.loss_mask, smoothing, everything),
            masked_cross_entropy(logits, batch.targets, batch.loss_mask, smoothing),
        )
