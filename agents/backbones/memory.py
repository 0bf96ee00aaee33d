"""build_memory: the memory module a block carries, chosen by ``BackboneConfig.memory``.

Every memory module maps the block's normed input (B, T, D) and its state to a ``MemoryOutput``: the output
(B, T, D), the next state (None when called with ``return_state=False``, which lets it skip work only the
state needs), the detached scalar metrics of that call and, with ``inspect=True``, its addressing and a
snapshot of the memory. It offers ``init_state(batch_size, device)`` and runs its recurrence in float32
even under autocast. What a call measured travels in its output, never on the module.
"""

from __future__ import annotations

from torch import nn

from agents.backbones.config import BackboneConfig
from agents.backbones.external import ExternalMemory
from agents.backbones.hebbian import HebbianMemory
from agents.backbones.titans import NeuralMemory


def build_memory(cfg: BackboneConfig) -> nn.Module:
    """A fresh memory module for one block of a backbone built from ``cfg``."""
    heads = cfg.memory_heads or cfg.n_heads
    if cfg.memory == "hebbian":
        return HebbianMemory(cfg.d_model, heads, cfg.memory_chunk, cfg.plasticity, cfg.hebbian_decay_init)
    if cfg.memory == "external":
        width = cfg.memory_slot_width or cfg.head_dim
        return ExternalMemory(
            cfg.d_model,
            cfg.memory_slots,
            width,
            cfg.memory_read_heads,
            cfg.memory_write_heads,
            cfg.memory_chunk,
        )
    if cfg.memory == "titans":
        return NeuralMemory(
            cfg.d_model, heads, cfg.neural_memory_expansion, cfg.memory_chunk, cfg.neural_memory_lr
        )
    raise ValueError(f"No memory module named {cfg.memory!r}; use 'hebbian', 'external' or 'titans'.")
