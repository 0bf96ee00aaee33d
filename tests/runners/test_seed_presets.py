"""The seed presets carry the seeds' own numbers (issue 21), and the knobs they need work."""

from __future__ import annotations

import pytest
import torch

from envs.generation.task import TextQualityTask
from runners.cross_eval import SEED_NEEDLE_BYTES
from tests.runners.helpers import compose_config


def test_agiformer_trains_on_windows_that_hold_the_seeds_2899_byte_needle():
    """4096-byte windows (the seed's 1024 could never show attention a needle 2,899 bytes back) with a
    quarter of the batches needle episodes; text windows stay fully scored."""
    cfg = compose_config("generation", ["preset=agiformer"], tiny=False)
    assert cfg.task.train_window == 4096 and cfg.backbone.max_seq_len >= 4096
    assert cfg.task.needle_mix == 0.25
    task = TextQualityTask(window=int(cfg.task.window), train_window=int(cfg.task.train_window))
    batch = task.sample_batch(2, "cpu", torch.Generator().manual_seed(0), level=0)
    assert batch.tokens.shape == (2, 4096) and bool(batch.loss_mask.all())
    shortest, longest = task.needle_haystack_range()
    assert shortest <= SEED_NEEDLE_BYTES <= longest
    # without it, a level's prompt + continuation (capped at the window) is the supervised length
    assert TextQualityTask(window=256).sample_batch(2, "cpu", level=0).tokens.shape == (2, 80)


def test_agiformer_keeps_the_seeds_batch_and_optimiser_on_every_hardware():
    """The seed's train_curriculum.py: 4 windows a step, AdamW 3e-4, 100 warm-up steps then constant,
    clipping 0.5; hardware=gpu's 256 rows would make each step 64 of the seed's."""
    for profile in ("cpu", "gpu"):  # composing the GPU profile needs no GPU
        cfg = compose_config("generation", ["preset=agiformer", f"hardware={profile}"], tiny=False)
        supervised = cfg.trainer.supervised
        assert (supervised.batch_size, supervised.lr, supervised.warmup_steps) == (4, 3e-4, 100)
        assert (supervised.min_lr_ratio, supervised.grad_clip) == (1.0, 0.5)


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
    assert cfg.backbone.act_halt_init == 0.45 and cfg.backbone.gradient_checkpointing is True  # hardware=cpu
    config = SupervisedConfig(optimizer="mugrokfast", compile="none", optimizer_kwargs=kwargs)
    optimizer = SupervisedTrainer(build_backbone(tiny()), config, total_steps=10).optimizer
    assert optimizer.grokfast_lambda == 0.3 and optimizer.qk_clip == 30.0


def test_bwr_dnc_has_the_seeds_model_ladder_and_a_32_symbol_vocabulary(tmp_path):
    from envs.recall.task import RecallTask
    from envs.recall.tokens import PAD, SEP
    from runners import recall
    from runners.app import execute

    cfg = compose_config("recall", ["preset=bwr_dnc"], tiny=False)
    assert [lv["length"] for lv in cfg.task.levels] == [2, 6, 10, 14, 18, 22, 26, 30, 32]
    assert {lv["vocab"] for lv in cfg.task.levels} == {32}
    assert (cfg.backbone.d_model, cfg.backbone.n_layers, cfg.backbone.n_heads) == (128, 4, 8)
    assert cfg.backbone.max_seq_len == 32 and cfg.trainer.supervised.batch_size == 32
    assert cfg.trainer.supervised.lr == 0.0005
    task = RecallTask.from_spec("copy", cfg.task.levels)
    assert task.token_ids() == [*range(32), PAD, SEP, SEP + 1]
    tiny_run = [
        "preset=bwr_dnc",
        "trainer.steps=2",
        "trainer.eval_every=2",
        "trainer.checkpoint_every=2",
        "trainer.progress_bar=false",
        "trainer.supervised.batch_size=4",
        "task.eval_batch=4",
        "backbone.d_model=32",
        "backbone.n_layers=1",
        "backbone.n_heads=2",
    ]
    cfg = compose_config("recall", tiny_run, tiny=False)
    report = execute(cfg, "recall", recall.build_experiment, tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    weights = state["experiment"]["backbone"] if "backbone" in state["experiment"] else state["experiment"]
    embed = next(v for k, v in _flatten(weights) if k.endswith("embed.weight"))
    assert embed.shape == (35, 32)  # 32 symbols + PAD, SEP, FILL rows, not the family's 275
    assert report["steps_done"] == 2


def _flatten(tree, prefix=""):
    """(dotted key, tensor) pairs of a nested state dict."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, torch.Tensor):
            yield f"{prefix}{key}", value
