"""Tiny configurations shared by the backbone tests (small enough for 2 CPU cores)."""

from agents.backbones import BackboneConfig

VOCAB = 37

# Every backbone variant the contract tests cover, as BackboneConfig overrides of ``tiny``.
VARIANTS = {
    "transformer": {},
    "gelu_untied": {"ffn": "gelu", "tie_embeddings": False},
    "hebbian": {"memory": "hebbian"},
    "external": {"memory": "external"},
    "titans": {"memory": "titans"},
    "hebbian_one_layer": {"memory": "hebbian", "memory_layers": [1]},
    "act_recursion": {"recursion": 3, "micro_steps": 2, "act": True, "deep_supervision": True},
    "titans_recursion": {"memory": "titans", "recursion": 2, "deep_supervision": True},
}


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
