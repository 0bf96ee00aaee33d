"""The one interface every MindGym backbone implements (see ../shared/DESIGN.md, "Backbones").

Token ids (B, T) in; logits, hidden states and optional memory state out. The inference engine relies on
two hooks: ``return_layers=True`` gives every block's hidden state, which it mixes with learned layer
weights and turns into logits with ``output_logits``; ``head_scale`` (n_layers, n_heads) scales each
attention head's output before the block's output projection, differentiably.

``inspect=True`` asks for a look inside (``BackboneOutput.inspection``): every block's attention
probabilities, each memory's addressing and a snapshot of each memory, as labelled maps that a drawer can
render without knowing the model. It leaves the logits and the state exactly as they are without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn


class InspectionMap(NamedTuple):
    """One measured quantity as P panels of R x C maps per sample: ``values`` (B, P, R, C), detached float32.

    ``rows``, ``cols`` and ``panel`` name what R, C and P index ("query position", "slot", "head"; ``panel``
    is "" when P is 1), so a drawer labels its axes without knowing where the numbers came from.
    """

    values: torch.Tensor
    rows: str
    cols: str
    panel: str = ""


@dataclass
class Inspection:
    """What ``forward(..., inspect=True)`` measured, in the last application of the block stack (with
    recursion or ACT the stack runs several times; the last pass is the one reported).

    attention:  ``block<i>`` -> softmax(q k^T / sqrt(d)) of block i, (B, heads, T, S): query position x key
                position, S = cached + new keys; taken before attention dropout.
    addressing: ``block<i>.<name>`` -> per-token or per-write quantities of block i's memory (external read
                and write weights, Hebbian decay, Titans learning rate / momentum / forgetting and the
                attention-memory gate).
    memory:     ``block<i>.<name>`` -> block i's memory after the call (external slots and usage, the
                Hebbian fast weights, the Titans MLP weights).
    """

    attention: dict[str, InspectionMap]
    addressing: dict[str, InspectionMap]
    memory: dict[str, InspectionMap]


class MemoryOutput(NamedTuple):
    """What a memory module's forward returns: its output (B, T, D), the next state (None with
    ``return_state=False``), detached scalar metrics, and with ``inspect=True`` its addressing and snapshot
    (named as in ``Inspection``, without the block prefix; None otherwise)."""

    output: torch.Tensor
    state: Any
    metrics: dict[str, torch.Tensor]
    addressing: dict[str, InspectionMap] | None = None
    snapshot: dict[str, InspectionMap] | None = None


@dataclass
class BackboneOutput:
    """What a backbone's forward returns.

    logits:        (B, T, vocab) from the final hidden state.
    hidden:        (B, T, D) output of the last block, before the final norm.
    layer_hiddens: one (B, T, D) tensor per block (before the final norm) when ``return_layers=True``.
    state:         memory / recurrent state to pass to the next call for chunked or streaming use (None
                   for an encoder, or when called with ``return_state=False``).
    aux_loss:      scalar auxiliary loss to add to the task loss (e.g. ACT ponder cost), or None.
    deep_logits:   logits after each refinement step (deep supervision), or None.
    horizon_logits: (B, T, K, vocab) for a backbone built with ``horizons=K > 1``: entry k predicts the
                   token k + 1 steps ahead (entry 0 equals ``logits``); None otherwise.
    metrics:       detached scalars this forward measured (memory use, halting steps, gate values), the
                   same values ``metrics()`` reports afterwards.
    inspection:    attention maps, memory addressing and memory snapshots with ``inspect=True``; else None.
    """

    logits: torch.Tensor
    hidden: torch.Tensor
    layer_hiddens: tuple[torch.Tensor, ...] | None = None
    state: Any = None
    aux_loss: torch.Tensor | None = None
    deep_logits: tuple[torch.Tensor, ...] | None = None
    horizon_logits: torch.Tensor | None = None
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)
    inspection: Inspection | None = None


class Backbone(nn.Module, ABC):
    """Base class of all backbones; subclasses set vocab_size, d_model, n_layers and n_heads."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int

    @abstractmethod
    def forward(
        self,
        tokens: torch.Tensor,
        state: Any = None,
        *,
        head_scale: torch.Tensor | None = None,
        return_layers: bool = False,
        return_state: bool = True,
        inspect: bool = False,
    ) -> BackboneOutput:
        """Run the model on ``tokens`` (B, T); ``state`` continues a previous chunk.

        ``return_state=False`` leaves ``output.state`` None and skips work only the state needs (training
        on whole sequences: a compiled graph would otherwise also run a backward for the unused state).
        ``inspect=True`` fills ``output.inspection`` (see ``Inspection``); it costs an explicit (T x S)
        attention matrix per block, so leave it off for training."""

    @abstractmethod
    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final norm and (tied) output head applied to any (…, D) hidden state."""

    def init_state(self, batch_size: int, device: torch.device | str) -> Any:
        """Fresh memory state for streaming use; None for a backbone without memory."""
        return None

    def reserve_state(self, state: Any, length: int) -> Any:
        """``state`` with room to stream up to ``length`` positions without copying it every token (a
        transformer's KV caches, filled in place afterwards, so the result continues once); by default the
        state itself (no memory, a state that does not grow, or a cache the model manages: HFBackbone's)."""
        return state

    def metrics(self) -> dict[str, float]:
        """Scalars for logging from the last forward (memory use, halting steps, gate values, ...)."""
        return {}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
