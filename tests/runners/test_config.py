"""Configs: a wrong key or type fails at composition with Hydra's message; every preset builds its model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from agents.backbones import build_backbone
from runners.app import check_preset, rank_seed
from runners.ddp import DistInfo
from tests.runners.helpers import compose_config

PRESETS = {
    "poh_maze": ("maze", {"kind": "poh", "d_model": 320, "n_heads": 5, "n_layers": 4, "recursion": 4}),
    "poh_hrm": ("maze", {"kind": "poh", "d_model": 320, "n_heads": 5, "n_layers": 4, "hrm_period": 4}),
    "poh_baseline": ("maze", {"kind": "transformer", "d_model": 384, "n_heads": 6, "n_layers": 4}),
    "bwr_dnc": ("recall", {"d_model": 128, "n_layers": 4, "n_heads": 8, "memory": "external"}),
    "agiformer": ("generation", {"d_model": 512, "n_layers": 6, "n_heads": 8, "memory": "hebbian"}),
    "cognate": (
        "generation",
        {"d_model": 320, "n_layers": 8, "n_heads": 5, "recursion": 3, "micro_steps": 2},
    ),
    "cognate_reasoning": ("generation", {"act": True, "act_threshold": 0.99}),
    "cognate_memory": ("generation", {"memory": "titans", "neural_memory_expansion": 4}),
    "cognate_speed": ("generation", {"act": True, "act_threshold": 0.8}),
    "echo": ("generation", {"d_model": 512, "n_layers": 6, "n_heads": 8}),
}


def test_unknown_key_fails_at_composition_naming_the_key():
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("maze", ["trainer.stepz=10"])
    assert "Key 'stepz' not in 'TrainerConfig'" in str(error.value.__cause__)


def test_wrong_type_fails_at_composition():
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("recall", ["trainer.steps=many"])
    assert "could not be converted to Integer" in str(error.value.__cause__)


def test_unknown_group_option_lists_the_available_ones():
    with pytest.raises(Exception, match="Available options") as error:
        compose_config("maze", ["backbone=mamba"])
    assert "hebbian" in str(error.value)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_composes_and_builds_its_model(name):
    runner, expected = PRESETS[name]
    cfg = compose_config(runner, [f"preset={name}"], tiny=False)
    assert cfg.preset.runner == runner
    check_preset(cfg, runner)
    backbone_cfg = OmegaConf.to_object(cfg.backbone)
    for key, value in expected.items():
        assert getattr(backbone_cfg, key) == value, key
    with torch.device("meta"):  # shapes only: building a 20M-parameter model for real takes seconds
        model = build_backbone(dataclasses.replace(backbone_cfg, vocab_size=300))
    assert (model.d_model, model.n_layers, model.n_heads) == (
        backbone_cfg.d_model,
        backbone_cfg.n_layers,
        backbone_cfg.n_heads,
    )
    assert model.num_parameters() > 12 * backbone_cfg.n_layers * backbone_cfg.d_model**2 * 0.9


def test_agiformer_runs_the_three_stage_plasticity_curriculum():
    cfg = compose_config("generation", ["preset=agiformer", "trainer.steps=1000"], tiny=False)
    assert cfg.curriculum.name == "staged"
    params = OmegaConf.to_container(cfg.curriculum.params, resolve=True)
    assert params["total"] == 1000 and params["bounds"] == [0.15, 0.4]
    assert [k["plasticity"] for k in params["knobs"]] == [0.1, 0.5, 0.99]


def test_preset_for_another_runner_names_the_right_command():
    cfg = compose_config("generation", ["preset=echo"], tiny=False)
    with pytest.raises(ValueError, match=r"python -m runners\.generation preset=echo"):
        check_preset(cfg, "maze")


def test_gpu_profile_is_sized_for_one_gpu():
    cfg = compose_config("maze", ["hardware=gpu"], tiny=False)
    assert cfg.hardware.device == "cuda" and cfg.trainer.supervised.bf16
    assert cfg.trainer.supervised.batch_size >= 256


def test_every_rank_gets_its_own_seed():
    cfg = compose_config("maze")
    seeds = {rank_seed(cfg, DistInfo(rank=r, world_size=4)) for r in range(4)}
    assert len(seeds) == 4 and rank_seed(cfg, DistInfo()) == cfg.seed


@pytest.mark.parametrize("curriculum", ["adaptive", "mixture", "learning_progress", "staged", "none"])
def test_every_curriculum_option_builds_and_trains_a_step(curriculum):
    from runners import maze

    experiment = maze.build_experiment(compose_config("maze", [f"curriculum={curriculum}"]), DistInfo())
    assert experiment.curriculum.schedule.name == curriculum
    assert float(experiment.train_step(0).metrics["loss"]) > 0


@pytest.mark.parametrize("backbone", ["transformer", "hebbian", "titans", "external"])
def test_every_backbone_option_builds_and_trains_a_step(backbone):
    from runners import recall

    cfg = compose_config("recall", [f"backbone={backbone}", "backbone.d_model=32", "backbone.memory_chunk=8"])
    experiment = recall.build_experiment(cfg, DistInfo())
    assert float(experiment.train_step(0).metrics["loss"]) > 0
