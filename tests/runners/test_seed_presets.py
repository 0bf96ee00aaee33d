"""The seed presets carry the seeds' own numbers (issue 21), and the knobs they need work."""

from __future__ import annotations

import pytest
import torch

from envs.generation.task import TextQualityTask
from tests.runners.helpers import compose_config


def test_agiformer_trains_and_scores_on_the_seeds_1024_byte_context():
    cfg = compose_config("generation", ["preset=agiformer"], tiny=False)
    assert cfg.task.train_window == 1024 and cfg.backbone.max_seq_len >= 1024
    task = TextQualityTask(window=int(cfg.task.window), train_window=int(cfg.task.train_window))
    batch = task.sample_batch(2, "cpu", torch.Generator().manual_seed(0), level=0)
    assert batch.tokens.shape == (2, 1024) and bool(batch.loss_mask.all())
    # without it, a level's prompt + continuation (capped at the window) is the supervised length
    assert TextQualityTask(window=256).sample_batch(2, "cpu", level=0).tokens.shape == (2, 80)


def test_a_bad_train_window_names_the_override():
    with pytest.raises(ValueError, match=r"task\.train_window=1024"):
        TextQualityTask(train_window=0)


def test_cognate_phase_one_optimiser_settings_reach_mugrokfast():
    from agents.backbones import build_backbone
    from agents.training.supervised import SupervisedConfig, SupervisedTrainer
    from tests.backbones.helpers import tiny

    cfg = compose_config("generation", ["preset=cognate_speed"], tiny=False)
    kwargs = dict(cfg.trainer.supervised.optimizer_kwargs)
    assert kwargs == {"grokfast_lambda": 0.3, "qk_clip": 30.0}
    assert cfg.backbone.act_halt_init == 0.45 and cfg.backbone.gradient_checkpointing is False
    config = SupervisedConfig(optimizer="mugrokfast", compile="none", optimizer_kwargs=kwargs)
    optimizer = SupervisedTrainer(build_backbone(tiny()), config, total_steps=10).optimizer
    assert optimizer.grokfast_lambda == 0.3 and optimizer.qk_clip == 30.0
