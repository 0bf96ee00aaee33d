"""``backbone.parity_with=<preset>``: the parameter count of another preset's backbone, for width matching.

The seed compares models at equal size by keeping depth and shrinking width (depth-first parity;
``agents.backbones.parity.match_parameters``). A runner resolves a preset name here, composing that
preset's config as its own command line would, and building its backbone on the meta device with this
run's vocabulary and horizons; ``build_backbone`` then matches the width to the count.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agents.backbones import BackboneConfig
from agents.backbones.parity import count_parameters
from envs.common import Task
from runners.config import CONF_PATH, ConfigError, preset_runner


def preset_parameter_count(
    preset: str, runner: str, vocab_size: int, horizons: int, maze_shape: Any = None
) -> int:
    """Parameters of ``preset``'s backbone built for this run's task (``vocab_size``, ``horizons``)."""
    if not (CONF_PATH / "preset" / f"{preset}.yaml").is_file():
        known = sorted(p.stem for p in (CONF_PATH / "preset").glob("*.yaml"))
        raise ConfigError(
            f"backbone.parity_with={preset!r} is neither a parameter count nor a preset; use an int such "
            f"as backbone.parity_with=7040000 or one of {known}."
        )
    made_for = preset_runner(preset)
    if made_for not in (None, runner):
        raise ConfigError(f"backbone.parity_with={preset} is a preset of runners.{made_for}, not {runner}.")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"preset={preset}"]
    if GlobalHydra.instance().is_initialized():
        cfg = compose(config_name=runner, overrides=overrides)
    else:
        with initialize_config_dir(config_dir=str(CONF_PATH), version_base="1.3"):
            cfg = compose(config_name=runner, overrides=overrides)
    backbone = OmegaConf.to_object(cfg.backbone)
    if backbone.parity_with is not None:
        raise ConfigError(
            f"backbone.parity_with={preset}: that preset matches its own width to {backbone.parity_with!r}; "
            "point parity_with at a preset with a fixed width (or give a parameter count)."
        )
    shape = backbone.maze_shape if backbone.maze_shape is not None else maze_shape
    target = dataclasses.replace(
        backbone, vocab_size=vocab_size, horizons=horizons, maze_shape=shape
    )
    return count_parameters(BackboneConfig(**dataclasses.asdict(target)))


def resolve_parity(cfg: DictConfig, runner: str, task: Task) -> None:
    """``backbone.parity_with`` given as a preset name becomes that preset's parameter count for ``task``
    (in ``cfg``, so the saved config holds the number the run matched); a count stays as it is."""
    if isinstance(cfg.backbone.parity_with, str):
        cfg.backbone.parity_with = preset_parameter_count(
            cfg.backbone.parity_with, runner, task.vocab_size, task.horizons, cfg.backbone.get("maze_shape")
        )
