"""Tiny configurations shared by the backbone tests (small enough for 2 CPU cores)."""

from agents.backbones import BackboneConfig

VOCAB = 37


def tiny(**overrides) -> BackboneConfig:
    """A 2-block, 32-wide backbone config; memory chunk 4 so short sequences cross chunk boundaries."""
    fields = {
        "vocab_size": VOCAB,
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 4,
        "memory_chunk": 4,
        "memory_slots": 8,
    }
    fields.update(overrides)
    return BackboneConfig(**fields)
