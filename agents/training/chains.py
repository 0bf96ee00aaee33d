"""Reading a rollout's contexts in one backbone pass per chain of steps, for the engine's RL update.

When the env appends each action's token to the observation (text generation), the context of step s+1
of a sub-env extends the context of step s. A causal backbone's output at position p depends only on the
tokens up to p, so every step of such a chain can read its output from one forward over the chain's last
context, at its own last position, instead of one forward over each step's context: S steps cost one
pass instead of S. :func:`chain_ends` finds the chains from the tokens themselves (a step whose next
context does not start with its own context, a new episode or a sliding window, ends its chain), so the
result never depends on what the env promises; :func:`read_chained` runs the passes.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.backbones.base import BackboneOutput


def chain_ends(tokens: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """For contexts ``tokens`` (S, B, W) of lengths ``length`` (S, B, 1), the step (S, B) whose context
    begins with each step's context: the last step of its chain (itself when the next one does not)."""
    steps, _, width = tokens.shape
    length = length.reshape(steps, -1)
    columns = torch.arange(width, device=tokens.device)
    inside = columns < length[:-1, :, None]  # each step's own columns
    same_prefix = ((tokens[1:] == tokens[:-1]) | ~inside).all(-1)
    continues = same_prefix & (length[1:] >= length[:-1])  # (S-1, B)
    ends = torch.empty_like(length)
    ends[-1] = steps - 1
    for step in range(steps - 2, -1, -1):  # one tensor op a step, as the return recursion
        ends[step] = torch.where(continues[step], ends[step + 1], step)
    return ends


def read_chained(
    read: Any, tokens: torch.Tensor, length: torch.Tensor, ends: torch.Tensor, rows: torch.Tensor
) -> BackboneOutput:
    """The outputs that ``read(tokens)`` (a backbone or the engine's read of one) gives the flat
    transitions ``rows`` (N,) at their last positions, as one-position outputs (N, 1, ...): each from
    one pass over its chain's last context. ``tokens`` (S*B, W), ``length`` (S*B, 1) and ``ends`` (S*B,)
    (the flat index of each transition's chain end) are flat over (steps, sub-envs)."""
    carriers, slot = torch.unique(ends[rows], return_inverse=True)
    width = int(length[carriers].max())  # the longest context read; the padding after it is never seen
    output = read(tokens[carriers, :width])
    positions = (length[rows].reshape(-1) - 1).clamp(min=0)

    def at(values: torch.Tensor) -> torch.Tensor:
        return values[slot, positions][:, None]

    layers = None if output.layer_hiddens is None else tuple(at(h) for h in output.layer_hiddens)
    return BackboneOutput(logits=at(output.logits), hidden=at(output.hidden), layer_hiddens=layers)
