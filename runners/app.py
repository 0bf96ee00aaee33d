"""What every training runner's ``main`` does around the loop: config checks, devices, DDP, seeds, run folder.

A runner module's ``__main__`` block is one line: :func:`hydra_main` with its runner name and the function
that builds its :class:`runners.loop.Experiment` (:func:`check_command_line`, then Hydra, then
:func:`cli_main`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from foundation import derive_seed, seed_everything
from runners.checkpoints import ResumePoint, load_resume_state
from runners.config import (
    CONF_PATH,
    ConfigError,
    check_overrides,
    merge_overrides,
    option_keys,
    register_configs,
    resume_config,
    validate,
)
from runners.ddp import DistInfo, broadcast_object, setup_distributed, teardown_distributed
from runners.loop import Experiment, RunPaths, train

register_configs()  # importing a runner stores the schemas its config composes from


def check_preset(cfg: DictConfig, runner: str) -> None:
    """A preset made for another runner fails here with the command that runs it."""
    made_for = cfg.preset.runner
    if made_for is not None and made_for != runner:
        raise ConfigError(
            f"preset={cfg.preset.name} is made for runners.{made_for}, not runners.{runner}; run "
            f"`python -m runners.{made_for} preset={cfg.preset.name}`."
        )


def command_line_overrides(argv: Sequence[str] | None = None) -> list[str]:
    """The overrides of a runner's command line (``sys.argv[1:]`` by default), as Hydra's parser reads it."""
    from hydra._internal.utils import get_args_parser

    try:
        args, _ = get_args_parser().parse_known_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit:  # a malformed flag: Hydra's own parser reports it
        return []
    return list(args.overrides or [])


def check_command_line(runner: str, argv: Sequence[str] | None = None) -> None:
    """Refuse a command line before Hydra composes it: a misspelt key (with or without ``+``) with the
    closest known key, a preset or task of another runner with the command that runs it. Exits with
    status 1 and the message, as Hydra does for its own errors."""
    try:
        check_overrides(runner, command_line_overrides(argv))
    except ValueError as err:
        raise SystemExit(f"Error in the command line of runners.{runner}:\n{err}") from None


def rank_seed(cfg: DictConfig, dist: DistInfo) -> int:
    """The seed of this rank: the run seed on rank 0, a derived independent one on the others."""
    return int(cfg.seed) if dist.rank == 0 else derive_seed(int(cfg.seed), f"rank{dist.rank}") % (2**31)


def hydra_run_dir() -> Path:
    """The output folder Hydra made for this run (or this multirun job)."""
    return Path(HydraConfig.get().runtime.output_dir)


def default_config(runner: str) -> DictConfig:
    """The runner's config as its command line without overrides composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside the runner's Hydra app
        return compose(config_name=runner)
    with initialize_config_dir(config_dir=str(CONF_PATH), version_base="1.3"):
        return compose(config_name=runner)


def resumed_run(
    cfg: DictConfig, runner: str, point: ResumePoint, overrides: list[str] | None
) -> tuple[DictConfig, list[str] | None]:
    """The config a resume runs, rebuilt from the checkpoint's own (:func:`runners.config.resume_config`),
    and the record of its command line: the original overrides merged with this command's."""
    if point.runner != runner:
        raise ConfigError(
            f"resume={cfg.resume!r} is a {point.runner!r} checkpoint; resume it with "
            f"`python -m runners.{point.runner}`, not runners.{runner}."
        )
    named = option_keys(overrides or [])
    resumed = resume_config(point.config, cfg, default_config(runner), runner, named, str(point.path))
    check_preset(resumed, runner)
    validate(resumed, runner)
    steps, again = int(resumed.trainer.steps), "true" if cfg.resume is True else cfg.resume
    if point.step == steps:
        raise ConfigError(
            f"resume={again}: the run in {point.path} already finished: it has done all its "
            f"trainer.steps={steps} steps. To train it further, extend it: resume={again} "
            f"trainer.steps={2 * steps} (its report.json and plots stay in its folder)."
        )
    if point.step > steps:
        raise ConfigError(
            f"resume={again}: {point.path} is at step {point.step}, past trainer.steps={steps}; a run "
            f"cannot be shortened. Pass trainer.steps above {point.step} to extend it."
        )
    if point.overrides is not None and overrides is not None:
        overrides = merge_overrides(point.overrides, overrides)
    return resumed, overrides


def record_resumed_config(cfg: DictConfig, overrides: list[str] | None, root: Path) -> None:
    """Hydra wrote this command's composed config and overrides into ``.hydra/``; a resume runs the
    checkpoint's config, so write that (and the merged command line) there instead."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.output_subdir is None or Path(hydra_cfg.runtime.output_dir).resolve() != root.resolve():
        return
    folder = root / str(hydra_cfg.output_subdir)
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    if overrides is not None:
        OmegaConf.save(OmegaConf.create(list(overrides)), folder / "overrides.yaml")


def execute(
    cfg: DictConfig,
    runner: str,
    build: Callable[[DictConfig, DistInfo], Experiment],
    run_dir: str | Path | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Check, set up, build the experiment, train it and return its report (rank 0's folder is the run's).

    The config is checked (:func:`runners.config.validate`) before anything runs. ``overrides`` is the
    command line that composed ``cfg`` (Hydra's record by default); checkpoints carry it. With
    ``resume=...`` the run continues the checkpoint's own config (:func:`resumed_run`): this command may
    change only the settings :data:`runners.config.RESUME_SAFE` lists.
    """
    check_preset(cfg, runner)
    validate(cfg, runner)
    if overrides is None and HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
    dist = setup_distributed(cfg.hardware.ddp, cfg.hardware.device, cfg.hardware.backend)
    try:
        root = Path(broadcast_object(str(run_dir if run_dir is not None else hydra_run_dir()), dist))
        point = load_resume_state(cfg.resume, root)
        if point is not None:
            cfg, overrides = resumed_run(cfg, runner, point, overrides)
            if dist.is_main:
                record_resumed_config(cfg, overrides, root)
        if cfg.hardware.num_threads > 0:
            torch.set_num_threads(int(cfg.hardware.num_threads))
        seed_everything(rank_seed(cfg, dist), deterministic=cfg.deterministic)
        experiment = build(cfg, dist)
        return train(experiment, cfg, RunPaths(root), dist, resumed=point, overrides=overrides)
    finally:
        teardown_distributed()


def cli_main(cfg: DictConfig, runner: str, build: Callable[[DictConfig, DistInfo], Experiment]) -> None:
    """What ``python -m runners.<runner>`` runs: :func:`execute`, with Ctrl-C ending the process quietly
    (exit status 130) once the loop has saved its checkpoint, and a refused config printed without a
    traceback (exit status 1)."""
    try:
        execute(cfg, runner, build)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except ConfigError as err:
        raise SystemExit(f"Error in the config of runners.{runner}: {err}") from None


def hydra_main(runner: str, build: Callable[[DictConfig, DistInfo], Experiment]) -> None:
    """``python -m runners.<runner>``: :func:`check_command_line` before Hydra composes it, then Hydra's
    app over ``conf/<runner>.yaml`` running :func:`cli_main`. Hydra would name the job after this module;
    each runner's yaml sets ``hydra.job.name`` to the runner's name (its log file, ``.hydra`` records)."""
    check_command_line(runner)

    @hydra.main(version_base="1.3", config_path=str(CONF_PATH), config_name=runner)
    def main(cfg: DictConfig) -> None:
        cli_main(cfg, runner, build)

    main()
