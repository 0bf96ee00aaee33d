"""Adaptive computation time (Graves 2016) over refinement steps: a halting head and the ponder cost.

Every token gets a halting probability after each refinement step; its output is the halting-weighted mix
of its hidden states, and the ponder cost (steps used + remainder) is what the model pays for thinking
longer. All of it is tensor arithmetic per token, so causality and streaming are untouched. The mix is
built step by step (``ActAccumulator``) so the backbone can stop computing tokens that halted
(``agents.backbones.active_rows``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from agents.backbones.linear import Linear


@dataclass
class HaltingResult:
    """ACT output: the mixed hidden state, per-token ponder cost and per-token number of steps used."""

    hidden: torch.Tensor  # (B, T, D)
    ponder_cost: torch.Tensor  # (B, T): N(t) + R(t)
    steps: torch.Tensor  # (B, T): N(t), the steps a token used before halting


class HaltingHead(nn.Module):
    """Maps a hidden state (…, D) to a halting probability (…); every token starts at ``initial`` (default
    0.27, so that early steps count)."""

    def __init__(self, d_model: int, initial: float = 0.2689414213699951):
        super().__init__()
        self.proj = Linear(d_model, 1)
        self.proj._keep_init = True  # the backbone's generic init must not undo this start
        nn.init.zeros_(self.proj.weight)
        nn.init.constant_(self.proj.bias, math.log(initial / (1.0 - initial)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.proj(hidden).squeeze(-1).float())


class ActAccumulator:
    """ACT's halting-weighted mix built one refinement step at a time, so that the caller knows after each
    step which tokens still run (``running``) and can stop computing the others.

    A token halts at the first step where its cumulative halting probability would exceed ``threshold``;
    that step gets the remainder 1 - (sum of earlier probabilities), so the weights sum to one. A halted
    token's weight is exactly zero at every later step, so what its later hidden states hold never matters.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.cumulative: torch.Tensor | None = None
        self.running: torch.Tensor | None = None  # (B, T) 1.0 while a token runs, 0.0 once it halted
        self.remainder: torch.Tensor | None = None
        self.steps: torch.Tensor | None = None
        self.mixed: torch.Tensor | None = None
        self.first_dtype: torch.dtype | None = None

    def update(self, hidden: torch.Tensor, prob: torch.Tensor, last: bool) -> torch.Tensor:
        """Add one step's hidden state (B, T, D) and halting probability (B, T); ``last`` halts every token
        still running. Returns ``running`` after this step (B, T): 1.0 for tokens that go on."""
        if self.running is None:
            self.cumulative = torch.zeros_like(prob)
            self.running = torch.ones_like(prob)
            self.remainder = torch.zeros_like(prob)
            self.steps = torch.zeros_like(prob)
            self.mixed = torch.zeros_like(hidden, dtype=torch.float32)
            self.first_dtype = hidden.dtype
        running, cumulative = self.running, self.cumulative
        halts_now = running if last else running * (cumulative + prob > self.threshold).float()
        keeps = running - halts_now
        weight = keeps * prob + halts_now * (1.0 - cumulative)
        self.remainder = self.remainder + halts_now * (1.0 - cumulative)
        self.cumulative = cumulative + keeps * prob
        self.steps = self.steps + running
        self.mixed = self.mixed + weight.unsqueeze(-1) * hidden.float()
        self.running = keeps
        return keeps

    def result(self) -> HaltingResult:
        """The mixed hidden state, ponder cost N + R and steps N per token (call after the last update)."""
        if self.mixed is None:
            raise ValueError("ActAccumulator.result() needs at least one update() first.")
        return HaltingResult(self.mixed.to(self.first_dtype), self.steps + self.remainder, self.steps)


def act_combine(
    hiddens: list[torch.Tensor], halt_probs: list[torch.Tensor], threshold: float
) -> HaltingResult:
    """Mix per-step hidden states with ACT halting weights; the last step takes whatever mass is left
    (all steps at once; see ``ActAccumulator`` for the rule)."""
    if len(hiddens) != len(halt_probs) or not hiddens:
        raise ValueError(
            "act_combine needs one halting probability tensor per hidden state (and at least one)."
        )
    accumulator = ActAccumulator(threshold)
    last = len(hiddens) - 1
    for i, (h, p) in enumerate(zip(hiddens, halt_probs)):
        accumulator.update(h, p, last=i == last)
    return accumulator.result()
