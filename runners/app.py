"""What every training runner's ``main`` does around the loop: config checks, devices, DDP, seeds, run folder.

A runner module is three lines of glue: ``@hydra.main`` -> :func:`cli_main` with its runner name and the
function that builds its :class:`runners.loop.Experiment`; before Hydra composes the command line, its
``__main__`` block calls :func:`check_command_line`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from foundation import derive_seed, seed_everything
from runners.config import check_overrides, validate
from runners.ddp import DistInfo, broadcast_object, setup_distributed, teardown_distributed
from runners.loop import Experiment, RunPaths, train


def check_preset(cfg: DictConfig, runner: str) -> None:
    """A preset made for another runner fails here with the command that runs it."""
    made_for = cfg.preset.runner
    if made_for is not None and made_for != runner:
        raise ValueError(
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


def execute(
    cfg: DictConfig,
    runner: str,
    build: Callable[[DictConfig, DistInfo], Experiment],
    run_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Check, set up, build the experiment, train it and return its report (rank 0's folder is the run's).

    The config is checked (:func:`runners.config.validate`) before anything runs.
    """
    check_preset(cfg, runner)
    validate(cfg, runner)
    dist = setup_distributed(cfg.hardware.ddp, cfg.hardware.device, cfg.hardware.backend)
    try:
        if cfg.hardware.num_threads > 0:
            torch.set_num_threads(int(cfg.hardware.num_threads))
        seed_everything(rank_seed(cfg, dist), deterministic=cfg.deterministic)
        root = Path(broadcast_object(str(run_dir if run_dir is not None else hydra_run_dir()), dist))
        experiment = build(cfg, dist)
        return train(experiment, cfg, RunPaths(root), dist)
    finally:
        teardown_distributed()


def cli_main(cfg: DictConfig, runner: str, build: Callable[[DictConfig, DistInfo], Experiment]) -> None:
    """What ``python -m runners.<runner>`` runs: :func:`execute`, with Ctrl-C ending the process quietly
    (exit status 130) once the loop has saved its checkpoint."""
    try:
        execute(cfg, runner, build)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
