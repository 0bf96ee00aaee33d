"""MindGym backbones: one transformer family with pluggable memories, ACT and recursive refinement.

from agents.backbones import BackboneConfig, build_backbone
model = build_backbone(BackboneConfig(vocab_size=64, d_model=128, n_layers=4, n_heads=4, memory="hebbian"))
out = model(tokens)                     # out.logits (B, T, V), out.state for the next chunk
out = model(tokens, inspect=True)       # out.inspection: attention maps, memory addressing and contents
"""

from __future__ import annotations

import dataclasses

from agents.backbones.base import Backbone, BackboneOutput, Inspection, InspectionMap
from agents.backbones.config import BackboneConfig
from agents.backbones.poh import PoHBackbone
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
    if isinstance(cfg.parity_with, int):  # width matched to a parameter count, depth and heads kept
        from agents.backbones.parity import match_parameters

        cfg = match_parameters(dataclasses.replace(cfg, parity_with=None), cfg.parity_with)
    elif cfg.parity_with is not None:
        raise ValueError(
            f"BackboneConfig.parity_with={cfg.parity_with!r} names a preset; the runner turns it into that "
            "preset's parameter count (python -m runners.maze backbone.parity_with=poh_hrm). From Python, "
            "pass the count: BackboneConfig(parity_with=7_040_000)."
        )
    if cfg.kind == "poh":
        return PoHBackbone(cfg)
    if cfg.kind == "hf":  # transformers is optional: imported only for this kind
        from agents.backbones.hf import HFBackbone

        return HFBackbone.from_config(cfg)
    return TransformerBackbone(cfg)


__all__ = [
    "Backbone",
    "BackboneConfig",
    "BackboneOutput",
    "Inspection",
    "InspectionMap",
    "PoHBackbone",
    "TransformerBackbone",
    "build_backbone",
]
