"""Test fixtures: a small real Backbone (causal transformer honouring head_scale) and a tiny sequence task.

``make_backbone`` uses the project's ``build_backbone`` when it exists and falls back to the local
``TinyTransformer`` otherwise, so the agent tests run against whichever is available.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from agents.backbones.base import Backbone, BackboneOutput
from envs.common import SupervisedBatch, Task


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))

    def forward(self, x: torch.Tensor, head_scale: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).unbind(2)
        att = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        if head_scale is not None:
            att = att * head_scale.view(1, -1, 1, 1).to(att.dtype)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class TinyTransformer(Backbone):
    """A minimal pre-norm causal transformer with tied embeddings."""

    def __init__(
        self, vocab_size: int, d_model: int = 32, n_layers: int = 2, n_heads: int = 2, max_len: int = 64
    ):
        super().__init__()
        self.vocab_size, self.d_model, self.n_layers, self.n_heads = vocab_size, d_model, n_layers, n_heads
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, n_heads) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(0.1)

    def forward(self, tokens, state=None, *, head_scale=None, return_layers=False) -> BackboneOutput:
        x = self.dropout(self.embed(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device)))
        layers = []
        for i, block in enumerate(self.blocks):
            x = block(x, None if head_scale is None else head_scale[i])
            layers.append(x)
        return BackboneOutput(self.output_logits(x), x, tuple(layers) if return_layers else None)

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(hidden) @ self.embed.weight.t()


def make_backbone(vocab_size: int, d_model: int = 32, n_layers: int = 2, n_heads: int = 2, max_len: int = 64):
    """A small backbone: the project's transformer when ``build_backbone`` exists, else TinyTransformer."""
    try:
        from agents.backbones import BackboneConfig, build_backbone
    except ImportError:
        return TinyTransformer(vocab_size, d_model, n_layers, n_heads, max_len)
    return build_backbone(
        BackboneConfig(
            vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_seq_len=max_len
        )
    )


@dataclass(frozen=True)
class EchoLevel:
    name: str
    length: int


class EchoTask(Task[EchoLevel]):
    """Predict the previous token: a deterministic rule a tiny model learns quickly."""

    level_cls = EchoLevel

    @classmethod
    def default_levels(cls):
        return [EchoLevel("short", 8), EchoLevel("long", 16)]

    @property
    def vocab_size(self) -> int:
        return 12

    @property
    def action_token_ids(self) -> list[int]:
        return list(range(2, 12))

    def sample_batch(self, batch_size, device=None, generator=None, level=None) -> SupervisedBatch:
        length = self.ladder[self.ladder.index(level)].length if level is not None else self.level.length
        gen_device = generator.device if generator is not None else device
        tokens = torch.randint(2, 12, (batch_size, length), generator=generator, device=gen_device).to(device)
        targets = torch.roll(tokens, 1, dims=1)
        mask = torch.ones_like(tokens, dtype=torch.bool)
        mask[:, 0] = False
        return SupervisedBatch(tokens, targets, mask)
