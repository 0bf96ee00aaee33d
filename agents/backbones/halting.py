"""Adaptive computation time (Graves 2016) over refinement steps: a halting head and the ponder cost.

Every token gets a halting probability after each refinement step; its output is the halting-weighted mix
of its hidden states, and the ponder cost (steps used + remainder) is what the model pays for thinking
longer. All of it is tensor arithmetic per token, so causality and streaming are untouched.
"""

from __future__ import annotations

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
    """Maps a hidden state (…, D) to a halting probability (…); starts near 0.27 so early steps count."""

    def __init__(self, d_model: int):
        super().__init__()
        self.proj = Linear(d_model, 1)
        self.proj._keep_init = True  # the backbone's generic init must not undo this start
        nn.init.zeros_(self.proj.weight)
        nn.init.constant_(self.proj.bias, -1.0)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.proj(hidden).squeeze(-1).float())


def act_combine(
    hiddens: list[torch.Tensor], halt_probs: list[torch.Tensor], threshold: float
) -> HaltingResult:
    """Mix per-step hidden states with ACT halting weights; the last step takes whatever mass is left.

    A token halts at the first step where its cumulative halting probability would exceed ``threshold``;
    that step gets the remainder 1 - (sum of earlier probabilities), so the weights sum to one.
    """
    if len(hiddens) != len(halt_probs) or not hiddens:
        raise ValueError(
            "act_combine needs one halting probability tensor per hidden state (and at least one)."
        )
    cumulative = torch.zeros_like(halt_probs[0])
    running = torch.ones_like(halt_probs[0])
    remainder = torch.zeros_like(halt_probs[0])
    steps = torch.zeros_like(halt_probs[0])
    mixed = torch.zeros_like(hiddens[0], dtype=torch.float32)
    last = len(hiddens) - 1
    for i, (h, p) in enumerate(zip(hiddens, halt_probs)):
        # The last step halts every token still running; earlier ones halt those crossing the threshold.
        halts_now = running if i == last else running * (cumulative + p > threshold).float()
        keeps = running - halts_now
        weight = keeps * p + halts_now * (1.0 - cumulative)
        remainder = remainder + halts_now * (1.0 - cumulative)
        cumulative = cumulative + keeps * p
        steps = steps + running
        mixed = mixed + weight.unsqueeze(-1) * h.float()
        running = keeps
    return HaltingResult(mixed.to(hiddens[0].dtype), steps + remainder, steps)
