"""Multi-horizon outputs (MLM-U style): one distribution per future step, trained from the maze oracle."""

import pytest
import torch

from agents.backbones import BackboneConfig, build_backbone
from agents.training.supervised import supervised_loss
from envs.maze.task import MazeTask


def _model(horizons: int, vocab: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone(
        BackboneConfig(vocab_size=vocab, d_model=32, n_layers=2, n_heads=2, horizons=horizons)
    )


def test_horizon_logits_shape_first_entry_and_causality():
    model = _model(3, 20)
    tokens = torch.randint(0, 20, (2, 12))
    out = model(tokens)
    assert out.horizon_logits.shape == (2, 12, 3, 20)
    assert torch.equal(out.horizon_logits[..., 0, :], out.logits)
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 20
    assert torch.allclose(model(changed).horizon_logits[:, :7], out.horizon_logits[:, :7], atol=1e-6)
    assert _model(1, 20)(tokens).horizon_logits is None


def test_multi_horizon_maze_targets_are_learned():
    task = MazeTask(level="5x5", horizons=3)
    model = _model(3, task.vocab_size)
    batch = task.sample_batch(8, generator=torch.Generator().manual_seed(0))
    assert batch.targets.shape[-1] == 3
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        loss, _ = supervised_loss(model(batch.tokens), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.1 * first


def test_a_single_horizon_backbone_on_multi_horizon_targets_names_the_fix():
    task = MazeTask(level="5x5", horizons=2)
    batch = task.sample_batch(2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"BackboneConfig\(horizons=2\)"):
        supervised_loss(_model(1, task.vocab_size)(batch.tokens), batch)
