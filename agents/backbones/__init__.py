"""MindGym backbones: one transformer family with pluggable memories, ACT and recursive refinement.

from agents.backbones import BackboneConfig, build_backbone
model = build_backbone(BackboneConfig(vocab_size=64, d_model=128, n_layers=4, n_heads=4, memory="hebbian"))
out = model(tokens)                     # out.logits (B, T, V), out.state for the next chunk
out = model(tokens, inspect=True)       # out.inspection: attention maps, memory addressing and contents
"""

from __future__ import annotations

from agents.backbones.base import Backbone, BackboneOutput, Inspection, InspectionMap
from agents.backbones.config import BackboneConfig
from agents.backbones.transformer import TransformerBackbone


def build_backbone(cfg: BackboneConfig) -> Backbone:
    """The backbone described by ``cfg`` (a BackboneConfig; a mapping of its fields is accepted too)."""
    if not isinstance(cfg, BackboneConfig):
        if hasattr(cfg, "items"):
            fields = set(BackboneConfig.__dataclass_fields__)
            unknown = sorted(set(dict(cfg.items())) - fields)
            if unknown:
                raise ValueError(
                    f"Unknown BackboneConfig field(s) {unknown}; accepted fields: {sorted(fields)}."
                )
            cfg = BackboneConfig(**dict(cfg.items()))
        else:
            raise TypeError(
                f"build_backbone takes a BackboneConfig or a mapping of its fields, got {type(cfg).__name__}."
            )
    return TransformerBackbone(cfg)


__all__ = [
    "Backbone",
    "BackboneConfig",
    "BackboneOutput",
    "Inspection",
    "InspectionMap",
    "TransformerBackbone",
    "build_backbone",
]
