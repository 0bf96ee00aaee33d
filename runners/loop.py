"""The shared training loop every runner drives: steps, logging, evaluation, checkpoints, resume, report.

A runner builds an :class:`Experiment` (its task, model, curriculum and evaluation) from the config and
hands it to :func:`train`. The loop owns everything that is the same for all tasks: the progress bar with
live loss, level and throughput; TensorBoard scalars averaged over ``trainer.log_every`` steps (metrics
stay tensors on the device between log points, so the hot loop never waits on the host); evaluation every
``trainer.eval_every`` steps; ``latest.pt`` every ``trainer.checkpoint_every`` steps and the best
checkpoint per curriculum level after each evaluation; resuming from a checkpoint; a final
``report.json`` with plots; and a clean checkpoint on Ctrl-C.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from agents.training.speed import peak_flops
from curricula import Curriculum
from foundation import rng_state, set_rng_state
from runners.checkpoints import CheckpointManager, ResumePoint, megabytes
from runners.ddp import DistInfo, any_rank
from runners.ddp_checkpoint import gather_rank_parts, resume_state_of_rank
from runners.logging import RunLogger, eval_postfix, level_label, ticking_status, to_float
from runners.report import plot_eval_history, report_headline, run_table, write_report


@dataclass
class StepOutput:
    """What one training step reports: scalar metrics (tensors are fine) and the work it did."""

    metrics: dict[str, Any]
    tokens: int = 0
    env_steps: int = 0
    flops: float = 0.0  # model FLOPs of the step (agents.training.speed.flops_per_token), for train/mfu


@dataclass
class EvalResult:
    """One evaluation: scalars for ``eval/``, success per level, and the score that ranks checkpoints.

    ``score`` measures the model at curriculum level ``level`` (the level before the evaluation's episodes
    moved the curriculum); the best checkpoint of that level is kept by it.
    """

    metrics: dict[str, float]
    level: int
    score: float
    level_success: dict[int, float] = field(default_factory=dict)
    env_steps: int = 0


class Experiment(ABC):
    """A runner's task-specific half of the loop (see runners/maze.py for an example).

    Everything the loop, ``runners.evaluate`` and ``bench.runner_throughput`` call is declared here.
    """

    runner: str
    curriculum: Curriculum  # the run's one curriculum; only the loop advances it

    @classmethod
    def comparison_plots(cls, runs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
        """PNG plots comparing the :meth:`full_evaluation` results of several runs (``runners.evaluate``)."""
        return []

    @abstractmethod
    def train_step(self, step: int) -> StepOutput:
        """One optimisation step (supervised, and RL when due)."""

    @abstractmethod
    def evaluate(self, step: int, logger: RunLogger) -> EvalResult:
        """Measure the model; may log images and text through ``logger``."""

    @property
    @abstractmethod
    def level(self) -> int:
        """The curriculum's current level index (a host int the curriculum keeps)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything to resume: model, optimiser, scheduler, curriculum, generators."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    @abstractmethod
    def load_weights(self, state: dict[str, Any]) -> None:
        """Only the models of a checkpoint's ``experiment`` entry (for evaluation)."""

    @abstractmethod
    def full_evaluation(self, episodes: int | None = None) -> dict[str, Any]:
        """Every level (and the family's extra axes) measured on fresh episodes, for ``runners.evaluate``."""

    def summary(self) -> dict[str, Any]:
        """Task-specific entries for report.json (e.g. accuracy by maze size)."""
        return {}

    def plots(self, out_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        """Task-specific PNG plots written into ``out_dir``."""
        return []

    def hparam_metrics(self, history: list[dict[str, Any]]) -> dict[str, float]:
        """The final headline metrics (not the per-level ones) shown next to the hyper-parameters."""
        return {f"hparam/{k}": v for k, v in headline(history[-1] if history else {}).items()}


def headline(record: dict[str, Any]) -> dict[str, Any]:
    """An eval record's headline metrics: not the step, the level, timings or the per-level ones."""
    timing = {"step", "seconds", "minutes"}
    return {
        k: v
        for k, v in record.items()
        if k not in timing and not k.endswith("per_s") and "/" not in k and "level" not in k
    }


@dataclass
class RunPaths:
    """Where a run writes: the Hydra output folder and its tb/, checkpoints/ and report files."""

    root: Path

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"


def checkpoint_state(
    experiment: Experiment,
    cfg: DictConfig,
    step: int,
    history: list,
    dist: DistInfo | None = None,
    minutes: float | None = None,
) -> dict[str, Any]:
    """The dict a checkpoint holds: plain data only, so it loads with ``weights_only=True``. ``minutes``:
    the run's wall clock so far, from which a resumed run's evaluation records count on.

    Under DDP (a collective then: every rank calls it) it also keeps each rank's own sampler, generators
    and RNG states under ``ranks`` (:mod:`runners.ddp_checkpoint`), so a resume continues every rank.
    """
    state = {
        "runner": experiment.runner,
        "step": step,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "experiment": experiment.state_dict(),
        "history": history,
        "rng": rng_state(),
    }
    if minutes is not None:
        state["minutes"] = minutes
    ranks = gather_rank_parts(state["experiment"], dist) if dist is not None else None
    if ranks is not None:
        state["ranks"] = ranks
    return state


class StopOnInterrupt:
    """The first Ctrl-C (SIGINT) asks the loop to stop after the current step and save ``latest.pt``.

    Stopping at a step boundary keeps the checkpoint exact (resume continues as if never stopped); a second
    Ctrl-C interrupts at once, leaving the previous checkpoint, which atomic writes keep intact.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("\nCtrl-C: stopping after this step and saving a checkpoint (press again to stop now).")


class _Meter:
    """Sums metric tensors between log points without syncing; converts to floats when read.

    Each metric is averaged over the steps that reported it (some, like backbone memory metrics, are only
    collected on logging steps).
    """

    def __init__(self, peak_flops: float | None = None) -> None:
        self.peak_flops = peak_flops
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.tokens = 0
        self.env_steps = 0
        self.flops = 0.0
        self.start = time.perf_counter()

    def add(self, out: StepOutput) -> None:
        for name, value in out.metrics.items():
            value = value.detach() if isinstance(value, torch.Tensor) else value
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts.get(name, 0) + 1
        self.tokens += out.tokens
        self.env_steps += out.env_steps
        self.flops += out.flops

    def read(self, device: torch.device) -> dict[str, float]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        values = {name: to_float(v) / self.counts[name] for name, v in self.sums.items()}
        values["tokens_per_s"] = self.tokens / elapsed
        if self.env_steps:
            values["env_steps_per_s"] = self.env_steps / elapsed
        if self.flops and self.peak_flops:
            values["mfu"] = self.flops / elapsed / self.peak_flops
        if device.type == "cuda":
            values["gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        self.__init__(self.peak_flops)
        return values


def train(
    experiment: Experiment,
    cfg: DictConfig,
    paths: RunPaths,
    dist: DistInfo,
    resumed: ResumePoint | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Run (or resume) training to ``cfg.trainer.steps`` and write the report; returns the report dict.

    ``resumed`` is the checkpoint to continue from; ``cfg`` must then be the config rebuilt from it
    (``runners.app.execute`` does both). ``overrides``, the run's command line, goes into every checkpoint.
    """
    trainer = cfg.trainer
    best_ranking(cfg)  # a bad trainer.best_mode fails before any step runs
    stamp = {"overrides": list(overrides)} if overrides is not None else None
    keep_last = int(trainer.get("keep_last", 0))
    checkpoints = CheckpointManager(paths.checkpoints, enabled=dist.is_main, stamp=stamp, keep_last=keep_last)
    logger = RunLogger(paths.tb, enabled=dist.is_main)
    history: list[dict[str, Any]] = []
    start = 0
    if resumed is not None:
        experiment_state, rng = resume_state_of_rank(resumed.state, dist)
        experiment.load_state_dict(experiment_state)
        set_rng_state(rng)
        start, history = resumed.step, list(resumed.state.get("history", []))
    meter = _Meter(peak_flops(dist.device))
    bar = tqdm(
        total=trainer.steps,
        initial=start,
        disable=not dist.is_main or not trainer.progress_bar,
        desc=cfg.name,
    )
    step = start
    stop: str | None = None  # why the run ended before trainer.steps: "interrupted", "time budget", ...
    started = time.monotonic()
    # the run's wall-clock minutes (evaluation records, checkpoints): a resumed run counts on from its save
    minutes_before = float(resumed.state.get("minutes", 0.0)) if resumed is not None else 0.0

    def minutes() -> float:
        return minutes_before + (time.monotonic() - started) / 60
    last_eval = ""  # the bar keeps the last evaluation's result beside the live loss
    size_shown = False
    with StopOnInterrupt() as interrupt, logging_redirect_tqdm(tqdm_class=tqdm):  # log lines go above the bar
        try:
            while step < trainer.steps:
                meter.add(experiment.train_step(step))
                experiment.curriculum.advance(1)  # the run's one clock: one tick per optimiser step
                step += 1
                bar.update(1)
                if step % trainer.log_every == 0 or step == trainer.steps:
                    values = logger.scalars("train", meter.read(dist.device), step)
                    stop = _non_finite(values, step, trainer.log_every, dist)
                    if stop:
                        break  # the weights may be corrupt: the last good latest.pt stays as it is
                    logger.scalars("curriculum", {"level": experiment.level}, step)
                    bar.set_postfix(
                        loss=f"{values.get('loss', float('nan')):.3f}",
                        level=level_label(experiment),
                        tok_s=f"{values['tokens_per_s']:.0f}",
                        **({"eval": last_eval} if last_eval else {}),
                        refresh=False,
                    )
                saving = step % trainer.checkpoint_every == 0 or step % trainer.eval_every == 0
                if saving or step == trainer.steps:  # never save weights a NaN step since the log made
                    stop = stop or _non_finite_pending(meter, step, dist)
                    if stop:
                        break
                if step % trainer.eval_every == 0 or step == trainer.steps:
                    with ticking_status(bar, f"evaluating at step {step}:"):
                        clock = minutes()
                        record = _evaluate(experiment, logger, checkpoints, cfg, step, history, dist, clock)
                    last_eval = eval_postfix(record, experiment)
                    bar.set_postfix_str(f"eval {last_eval}, level {level_label(experiment)}")
                    meter.start = time.perf_counter()  # throughput counts training time only
                stop = _should_stop(interrupt, step, cfg, dist, time.monotonic() - started)
                if stop and not saving:  # a stop between log points saves too: check what it would keep
                    stop = _non_finite_pending(meter, step, dist) or stop
                    if stop.startswith("non-finite"):
                        break
                if step % trainer.checkpoint_every == 0 or step == trainer.steps or stop:
                    checkpoints.save_latest(checkpoint_state(experiment, cfg, step, history, dist, minutes()))
                    if not size_shown and dist.is_main:  # once: what a checkpoint of this run weighs
                        tqdm.write(checkpoint_line(checkpoints))
                        size_shown = True
                if stop:
                    if dist.is_main:  # one line for the run, not one per rank
                        tqdm.write(f"\nStopped at step {step} ({stop}); saved {checkpoints.latest_path}.")
                    break
        finally:
            bar.close()
            logger.flush()
    report = finish(experiment, cfg, paths, history, logger, dist, step, stop)
    logger.close()
    if stop and stop.startswith("non-finite"):
        raise NonFiniteMetricError(
            f"Training stopped: {stop}. The last good checkpoint, {checkpoints.latest_path}, was not "
            "overwritten; lower trainer.supervised.lr (or the memory's learning rate) and resume=true."
        )
    if stop == "interrupted":
        raise KeyboardInterrupt
    return report


class NonFiniteMetricError(RuntimeError):
    """A training metric (the loss, a gradient norm, ...) became NaN or infinite."""


def _non_finite_names(values: Mapping[str, Any], dist: DistInfo) -> str | None:
    """The training metrics of ``values`` that are NaN / Inf, named for the log (all ranks agree: a rank
    whose own metrics are finite names "a metric on another rank"); None when every rank's are finite."""
    bad = sorted(name for name, value in values.items() if not math.isfinite(to_float(value)))
    if not any_rank(bool(bad), dist):
        return None
    return ", ".join(f"train/{name}" for name in bad) or "a metric on another rank"


def _non_finite(values: Mapping[str, float], step: int, every: int, dist: DistInfo) -> str | None:
    """Name the training metrics that went NaN / Inf since the last log point (all ranks agree)."""
    names = _non_finite_names(values, dist)
    return names and f"non-finite {names} between steps {max(step - every, 0)} and {step}"


def _non_finite_pending(meter: _Meter, step: int, dist: DistInfo) -> str | None:
    """Like ``_non_finite`` for the metrics summed since the last log point (read without resetting them),
    so that a checkpoint or evaluation between log points never keeps weights a NaN step produced."""
    names = _non_finite_names(meter.sums, dist)
    return names and f"non-finite {names} by step {step}"


BEST_MODES = ("max", "min")


def best_ranking(cfg: DictConfig) -> tuple[str | None, float]:
    """``trainer.best_metric`` (None: the runner's own score) and the sign that makes higher better."""
    metric = cfg.trainer.get("best_metric")
    mode = cfg.trainer.get("best_mode", "max")
    if mode not in BEST_MODES:
        raise ValueError(
            f"trainer.best_mode={mode!r} is unknown; use one of {BEST_MODES} "
            "(e.g. trainer.best_mode=min for bits per character)."
        )
    if metric in (None, ""):
        return None, 1.0  # the runner's score is higher-better; best_mode applies to best_metric
    return str(metric), (1.0 if mode == "max" else -1.0)


def ranking_score(result: EvalResult, cfg: DictConfig) -> float:
    """The number the best checkpoint of ``result.level`` is kept by, higher better: the runner's score,
    or ``trainer.best_metric`` of this evaluation signed by ``trainer.best_mode`` (NaN never wins)."""
    metric, sign = best_ranking(cfg)
    if metric is None:
        return result.score
    if metric not in result.metrics:
        raise ValueError(
            f"trainer.best_metric={metric!r} is not among this runner's evaluation metrics "
            f"({', '.join(sorted(k for k in result.metrics if '/' not in k))}); pick one, e.g. "
            "trainer.best_metric=bits_per_char trainer.best_mode=min, or trainer.best_metric=null."
        )
    value = float(result.metrics[metric])
    return sign * value if math.isfinite(value) else float("-inf")


def _should_stop(
    interrupt: StopOnInterrupt, step: int, cfg: DictConfig, dist: DistInfo, elapsed_s: float
) -> str | None:
    """Why to stop after this step: Ctrl-C, or the ``trainer.max_minutes`` budget spent. Under DDP all
    ranks must stop at the same step, so they decide together at log steps."""
    budget = cfg.trainer.max_minutes
    time_up = budget is not None and elapsed_s >= 60.0 * float(budget)
    interrupted = interrupt.requested
    if dist.distributed:
        if step % cfg.trainer.log_every != 0:
            return None
        interrupted, time_up = any_rank(interrupted, dist), any_rank(time_up, dist)
    if interrupted:
        return "interrupted"
    return f"time budget of trainer.max_minutes={budget} spent" if time_up else None


def _evaluate(
    experiment: Experiment,
    logger: RunLogger,
    checkpoints: CheckpointManager,
    cfg: DictConfig,
    step: int,
    history: list[dict[str, Any]],
    dist: DistInfo | None = None,
    minutes: float | None = None,
) -> dict[str, Any]:
    """Evaluate, log, record in ``history`` and keep the best checkpoint of the level just evaluated.

    The record's ``seconds`` is the evaluation's own duration; ``minutes`` (when given) the run's wall
    clock when it began, the x axis of a time-to-accuracy curve."""
    start = time.perf_counter()
    result = experiment.evaluate(step, logger)
    elapsed = max(time.perf_counter() - start, 1e-9)
    metrics = {**result.metrics, "seconds": elapsed}
    if result.env_steps:
        metrics["env_steps_per_s"] = result.env_steps / elapsed
    logger.scalars("eval", metrics, step)
    logger.scalars("curriculum", {f"success_level{k}": v for k, v in result.level_success.items()}, step)
    record = {"step": step, "level": result.level, "score": result.score, **metrics}
    if minutes is not None:
        record["minutes"] = minutes
    record.update({f"success_level{k}": v for k, v in result.level_success.items()})
    history.append(record)
    score = ranking_score(result, cfg)
    state = checkpoint_state(experiment, cfg, step, history, dist, minutes)
    checkpoints.update_best(result.level, score, state)
    logger.flush()
    return record


def finish(
    experiment: Experiment,
    cfg: DictConfig,
    paths: RunPaths,
    history: list[dict[str, Any]],
    logger: RunLogger,
    dist: DistInfo,
    step: int,
    stopped: str | None = None,
) -> dict[str, Any]:
    """Write report.json and plots (rank 0) and the hyper-parameters with the final metrics; every stop
    (finished, Ctrl-C, time budget, non-finite loss) writes them."""
    report = {
        "runner": experiment.runner,
        "steps": int(cfg.trainer.steps),
        "steps_done": step,
        "stopped_early": stopped,
        "final": history[-1] if history else {},
        "history": history,
        "best_checkpoints": {  # in the unit of trainer.best_metric (or the runner's headline score)
            str(k): best_ranking(cfg)[1] * v
            for k, v in CheckpointManager(paths.checkpoints).best_scores().items()
        },
        "best_metric": {
            "name": best_ranking(cfg)[0] or "score",
            "mode": "max" if best_ranking(cfg)[1] > 0 else "min",
        },
        "checkpoint_sizes": _checkpoint_sizes(paths, cfg),
        **experiment.summary(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if dist.is_main:
        names = getattr(experiment.curriculum, "level_names", None)
        metric = getattr(experiment, "headline", None)
        title = f"{cfg.name}: evaluation"
        final_level = (report.get("curriculum") or {}).get("level")
        history_png = paths.plots / "eval_history.png"
        plots = [plot_eval_history(history, history_png, title, metric, names, final_level)]
        plots += experiment.plots(paths.plots, history)
        report["plots"] = [str(p.relative_to(paths.root)) for p in plots]
        write_report(report, paths.report)
        logger.hparams(OmegaConf.to_container(cfg, resolve=True), experiment.hparam_metrics(history))
        print(run_summary(report, paths.root))
    return report


def checkpoint_line(checkpoints: CheckpointManager) -> str:
    """One console line: the size of ``latest.pt`` and what fills it (weights, optimiser state, ...)."""
    latest = checkpoints.latest_path
    size = latest.stat().st_size if latest.is_file() else 0
    parts = ", ".join(f"{name} {megabytes(n)}" for name, n in checkpoints.parts.items())
    keep = f"; keeping the {checkpoints.keep_last} newest numbered copies" if checkpoints.keep_last else ""
    return f"Checkpoint {latest}: {megabytes(size)} ({parts}){keep}."


def _checkpoint_sizes(paths: RunPaths, cfg: DictConfig) -> dict[str, Any]:
    """report.json's record of the checkpoint files: bytes per file and on disk (links count once)."""
    sizes = CheckpointManager(paths.checkpoints, keep_last=int(cfg.trainer.get("keep_last", 0))).sizes()
    sizes.pop("parts")  # only the manager that wrote them knows; the console line showed them
    return sizes


def _sizes_line(sizes: Mapping[str, Any] | None) -> list[str]:
    """The closing line on checkpoint sizes (none when the run wrote no checkpoint)."""
    files = (sizes or {}).get("files") or {}
    if not files:
        return []
    listed = ", ".join(f"{name} {megabytes(n)}" for name, n in files.items())
    return [f"Checkpoint files: {listed}; {megabytes(sizes['disk_bytes'])} on disk (hard links count once)."]


def run_summary(report: Mapping[str, Any], root: Path) -> str:
    """The closing text: how far the run got, a table of the headline metric's final and best value per
    level (from report.json's history), the best checkpoint of each curriculum level, and the run folder.

    Final and best sit side by side because neither alone tells the story: the best hides what a level
    fell to after the curriculum moved on, and the last evaluation of the current level measures a new,
    harder level right after a move.
    """
    names = (report.get("curriculum") or {}).get("level_names") or []
    ranked_by = (report.get("best_metric") or {}).get("name")
    metric = ranked_by if ranked_by not in (None, "score") else report_headline(report) or "score"
    level = (report.get("curriculum") or {}).get("level")
    known = isinstance(level, int) and 0 <= level < len(names)
    where = f"; curriculum at level {level} ({names[level]})" if known else ""
    done = report.get("steps_done", report["steps"])
    stopped = f", stopped early: {report['stopped_early']}" if report.get("stopped_early") else ""
    best = ", ".join(
        f"{names[int(k)] if int(k) < len(names) else f'level {k}'}: {v:.3f}"
        for k, v in report.get("best_checkpoints", {}).items()
    )
    return "\n".join(
        [
            f"Finished {done} of {report['steps']} steps{stopped}{where}.",
            run_table(report),
            f"Best checkpoints (checkpoints/best_level<k>.pt, {metric} at the curriculum level when saved): "
            f"{best or 'none'}.",
            *_sizes_line(report.get("checkpoint_sizes")),
            f"Run folder: {root} (report.json, plots/, tb/ for tensorboard --logdir, checkpoints/).",
        ]
    )
