"""Shared helpers of the runner tests: compose a runner's config with tiny overrides and read TensorBoard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import runners
from runners.config import register_configs

CONF_DIR = str(Path(runners.__file__).parent / "conf")

TINY_COMMON = [
    "backbone.d_model=32",
    "backbone.n_layers=1",
    "backbone.n_heads=2",
    "trainer.steps=4",
    "trainer.log_every=2",
    "trainer.eval_every=2",
    "trainer.checkpoint_every=2",
    "trainer.progress_bar=false",
    "trainer.supervised.batch_size=8",
    "trainer.supervised.warmup_steps=1",
]

TINY = {
    "maze": [
        *TINY_COMMON,
        "task.levels=[{name: 3x3, height: 3, width: 3}, {name: 4x4, height: 4, width: 4}]",
        "task.eval_episodes=8",
        "task.render_rollouts=1",
        "task.eval_generators=[prim]",
    ],
    "recall": [*TINY_COMMON, "task.levels=[len1-v2, len2-v4, len4-v8]", "task.eval_batch=8"],
    "generation": [
        *TINY_COMMON,
        "task.levels=[{name: p16-c4, prompt_length: 16, continuation_length: 4}, "
        "{name: p16-c8, prompt_length: 16, continuation_length: 8}]",
        "task.window=32",
        "task.eval_bytes=512",
        "task.eval_envs=4",
        "engine.interleave.warmup_supervised=1",
        "engine.interleave.supervised_steps=1",
        "engine.rl.rollout_steps=8",
        "engine.rl_envs=4",
    ],
}


def compose_config(runner: str, overrides: list[str] | None = None, tiny: bool = True) -> DictConfig:
    """The runner's config as ``python -m runners.<runner> <overrides>`` would compose it."""
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=runner, overrides=[*(TINY[runner] if tiny else []), *(overrides or [])])


def event_tags(tb_dir: Path) -> dict[str, Any]:
    """Tags of every kind in a run's TensorBoard events, read back with TensorBoard's own reader."""
    accumulator = EventAccumulator(str(tb_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator.Tags() | {"accumulator": accumulator}


def maze_history(records: list[tuple[int, int, float, float]]) -> list[dict[str, Any]]:
    """A maze run's evaluation history from (step, level, 3x3 exact path, 4x4 exact path) rows, with the keys
    the runner writes (per-level exact_path and success, their mean, timings)."""
    return [
        {
            "step": step,
            "level": level,
            "score": a,
            "exact_path": a,
            "exact_path/3x3": a,
            "exact_path/4x4": b,
            "success/3x3": a,
            "success/4x4": b,
            "exact_path_mean": (a + b) / 2,
            "seconds": 1.5,
            "env_steps_per_s": 100.0,
        }
        for step, level, a, b in records
    ]
