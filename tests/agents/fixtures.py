"""Test fixtures: a small project backbone and a tiny sequence task a model learns in a few steps."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agents.backbones import BackboneConfig, build_backbone
from envs.common import SupervisedBatch, Task


def make_backbone(vocab_size: int, d_model: int = 32, n_layers: int = 2, n_heads: int = 2, max_len: int = 64):
    """A small project transformer for agent tests."""
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
