"""The PoH-HRM seed's protocol in the maze runner: presets, epochs, fixed sets saved with the run, parity."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from omegaconf import OmegaConf

from agents.backbones import build_backbone
from agents.backbones.parity import count_parameters
from envs.maze import tokens as tok
from envs.maze.fixed import maze_from_state, maze_keys
from foundation.checkpoint import load_checkpoint
from runners import maze
from runners.app import execute
from runners.config import ConfigError
from runners.ddp import DistInfo
from runners.evaluate import evaluate_checkpoint
from runners.parity import resolve_parity
from tests.runners.helpers import compose_config, event_tags

VOCAB = tok.VOCAB_SIZE
TINY_PROTOCOL = [
    "preset=poh_hrm",
    "task.levels=[{name: 5x5, height: 5, width: 5, min_path: 4}]",
    "task.train_mazes=24",
    "task.test_mazes=8",
    "trainer.epochs=2",
    "backbone.d_model=32",
    "backbone.n_heads=2",
    "backbone.recursion=2",
    "backbone.hrm_period=2",
    "trainer.eval_every=3",
    "trainer.checkpoint_every=3",
]


@pytest.mark.parametrize(
    ("preset", "kind", "width", "heads", "seed_count"),
    [("poh_hrm", "poh", 320, 5, 7_041_465), ("poh_baseline", "transformer", 384, 6, 7_211_664)],
)
def test_presets_keep_the_seed_protocol_under_hardware_gpu(preset, kind, width, heads, seed_count):
    cfg = compose_config("maze", [f"preset={preset}", "hardware=gpu"], tiny=False)
    assert (cfg.backbone.kind, cfg.backbone.d_model, cfg.backbone.n_heads, cfg.backbone.n_layers) == (
        kind, width, heads, 4
    )
    assert cfg.trainer.supervised.batch_size == 32  # the seed's batch, not hardware=gpu's 256
    assert (cfg.task.train_mazes, cfg.task.test_mazes, cfg.trainer.epochs) == (400, 80, 30)
    supervised = cfg.trainer.supervised
    assert (supervised.lr, supervised.warmup_steps, cfg.task.horizons) == (1e-3, 500, 1)
    backbone = dataclasses.replace(OmegaConf.to_object(cfg.backbone), vocab_size=tok.VOCAB_SIZE)
    assert count_parameters(backbone) == pytest.approx(seed_count, rel=0.03)


def test_parity_with_a_preset_matches_its_count():
    cfg = compose_config("maze", ["preset=poh_baseline", "backbone.parity_with=poh_hrm"], tiny=False)
    task = maze.MazeTask.from_spec(OmegaConf.to_container(cfg.task.levels))
    resolve_parity(cfg, "maze", task)
    poh = OmegaConf.to_object(compose_config("maze", ["preset=poh_hrm"], tiny=False).backbone)
    target = count_parameters(dataclasses.replace(poh, vocab_size=tok.VOCAB_SIZE))
    assert cfg.backbone.parity_with == target
    with torch.device("meta"):
        built = build_backbone(dataclasses.replace(OmegaConf.to_object(cfg.backbone), vocab_size=VOCAB))
    assert built.n_layers == 4 and built.n_heads == 6
    assert built.num_parameters() == pytest.approx(target, rel=0.05)
    with pytest.raises(ConfigError, match="neither a parameter count nor a preset"):
        bad = compose_config("maze", ["backbone.parity_with=nonsense"])
        resolve_parity(bad, "maze", task)


def test_epochs_need_a_fixed_training_set():
    cfg = compose_config("maze", ["trainer.epochs=3"])
    with pytest.raises(ConfigError, match=r"task\.train_mazes"):
        maze.MazeExperiment(cfg, DistInfo(device=torch.device("cpu")))


def test_a_run_trains_by_epochs_and_saves_its_sets_for_resume_and_evaluate(tmp_path):
    cfg = compose_config("maze", TINY_PROTOCOL)
    report = execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path)
    assert report["steps"] == math.ceil(2 * 24 / 8)  # 2 epochs of 24 mazes at the tiny batch of 8
    final = report["history"][-1]
    assert {"exact_path", "near_optimal", "success"} <= set(final)  # near_optimal: the seed's "optimal"
    scalars = event_tags(tmp_path / "tb")["scalars"]
    assert {"train/poh/route_entropy", "train/poh/route_entropy_weight", "eval/success"} <= set(scalars)
    state = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")
    saved = state["experiment"]["task"]
    assert saved["epochs_started"] == [2]

    # another seed draws other sets, until a checkpoint's are loaded (what resume does)
    other = compose_config("maze", [*TINY_PROTOCOL, "seed=7"])
    experiment = maze.MazeExperiment(other, DistInfo(device=torch.device("cpu")))
    keys = maze_keys(maze_from_state(saved["test"][0]))
    assert maze_keys(experiment.fixed.test_sets[0]) != keys
    experiment.load_state_dict(state["experiment"])
    assert maze_keys(experiment.fixed.test_sets[0]) == keys
    # checkpoints from before the task state had its shared key keep resuming
    legacy = maze.MazeExperiment(other, DistInfo(device=torch.device("cpu")))
    old = {**state["experiment"], "maze_sets": state["experiment"]["task"]}
    del old["task"]
    legacy.load_state_dict(old)
    assert maze_keys(legacy.fixed.test_sets[0]) == keys and legacy.fixed.epochs_started == [2]
    assert experiment.fixed.epochs_started == [2] and experiment.agent.supervised.allowed_targets is not None

    _, results = evaluate_checkpoint(tmp_path / "checkpoints" / "latest.pt", "cpu", 0)
    assert results["test_mazes"] == {"5x5": 8}
    assert results["exact_path"]["5x5"] == pytest.approx(final["exact_path"])
    assert results["success"]["5x5"] == pytest.approx(final["success"])
    assert results["near_optimal"]["5x5"] == pytest.approx(final["near_optimal"])

    extend = ["resume=true", "trainer.steps=8", "trainer.progress_bar=false"]
    resumed = compose_config("maze", extend, tiny=False)
    report = execute(resumed, "maze", maze.build_experiment, run_dir=tmp_path)
    assert report["steps_done"] == 8
    again = load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["experiment"]["task"]
    assert maze_keys(maze_from_state(again["train"][0])) == maze_keys(maze_from_state(saved["train"][0]))
    assert again["epochs_started"] == [3]  # 8 steps x 8 = 64 rows: into the third pass over 24 mazes
