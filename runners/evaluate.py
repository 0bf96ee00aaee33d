"""Evaluate saved checkpoints and write ``report.json`` plus PNG plots, several runs side by side.

    python -m runners.evaluate checkpoint=outputs/2026-11-23/04-30-00/checkpoints/latest.pt
    python -m runners.evaluate 'checkpoint=[outputs/runA,outputs/runB]' 'labels=[hebbian,plain]'
    python -m runners.evaluate checkpoint=outputs/agiformer on_task=needle   # runners.cross_eval

A checkpoint (or a run folder, meaning its ``checkpoints/latest.pt``) carries the config it was trained
with, so the evaluation rebuilds the same task and model, loads the weights and runs the family's full
evaluation: maze exact-path accuracy by size and generator, recall accuracy heatmaps, generation reward
and bits per character. Everything lands in this command's Hydra output folder.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf
from tqdm.auto import tqdm

from foundation import seed_everything
from foundation.checkpoint import load_checkpoint
from runners.app import hydra_run_dir
from runners.checkpoints import LATEST, latest_in_folder
from runners.config import SCHEMAS, register_configs
from runners.cross_eval import evaluate_on_task
from runners.ddp import DistInfo, command_line_device
from runners.experiment import AgentExperiment
from runners.generation import GenerationExperiment
from runners.logging import ticking_status
from runners.maze import MazeExperiment
from runners.recall import RecallExperiment
from runners.report import format_table, level_results, write_report

EXPERIMENTS: dict[str, type[AgentExperiment]] = {
    "maze": MazeExperiment,
    "recall": RecallExperiment,
    "generation": GenerationExperiment,
}
RUNNERS = tuple(EXPERIMENTS)


TASK_ALIASES = ("task=", "+task=", "++task=")


def command_line(argv: Sequence[str]) -> list[str]:
    """The command line with ``task=X`` read as ``on_task=X``: ``task`` names the training runners' config
    group (conf/task/), so Hydra refuses it as this app's key ("Could not override 'task'"); the spelling
    older notes use keeps working."""
    out = []
    for arg in argv:
        alias = next((a for a in TASK_ALIASES if arg.startswith(a)), None)
        out.append(f"on_task={arg[len(alias) :]}" if alias else arg)
    return out


def checkpoint_paths(spec: Any) -> list[Path]:
    """``checkpoint=`` as a list of checkpoint files (a run folder means its latest.pt)."""
    items = list(spec) if isinstance(spec, ListConfig | list | tuple) else [spec]
    if not items or any(not isinstance(i, str) or not i for i in items):
        raise ValueError(
            f"checkpoint={spec!r}: pass a checkpoint file or run folder, or a list: 'checkpoint=[A,B]'."
        )
    return [checkpoint_file(item) for item in items]


def checkpoint_file(spec: Any) -> Path:
    """``checkpoint=``: a checkpoint file, or a run folder meaning its ``checkpoints/latest.pt``."""
    path = Path(str(spec)).expanduser()
    if path.is_dir():
        latest = latest_in_folder(path)
        if latest is not None:
            return latest
        raise ValueError(
            f"checkpoint={spec}: the folder has no checkpoints/{LATEST}; pass a run folder "
            "(checkpoint=outputs/<date>/<time>) or a file (checkpoint=<run>/checkpoints/best_level0.pt)."
        )
    if not path.is_file():
        raise ValueError(
            f"checkpoint={spec}: no such file or folder; pass a run folder, "
            f"checkpoint=outputs/<date>/<time>, or a file, checkpoint=<run>/checkpoints/{LATEST}."
        )
    return path


def run_labels(paths: list[Path], labels: list[str] | None) -> list[str]:
    """Names for the runs in plots: ``labels=`` when given, else each run folder's name."""
    if labels is not None:
        if len(labels) != len(paths):
            raise ValueError(f"labels has {len(labels)} names for {len(paths)} checkpoints; give one each.")
        return list(labels)
    names = []
    for path in paths:
        run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        name = f"{run.parent.name}/{run.name}" if run.parent.name else run.name
        name = f"{name}:{path.stem}"
        names.append(name if name not in names else f"{name}#{len(names)}")
    return names


def load_experiment(path: Path, device: str) -> tuple[AgentExperiment, dict[str, Any]]:
    """Rebuild the experiment a checkpoint came from on ``device`` with its weights loaded; (experiment,
    the checkpoint's state)."""
    state = load_checkpoint(path)
    runner = state.get("runner")
    if runner not in RUNNERS:
        raise ValueError(
            f"{path} is not a MindGym runner checkpoint (runner={runner!r}; expected {RUNNERS}); pass "
            "checkpoint=<run folder> or checkpoint=<run folder>/checkpoints/latest.pt."
        )
    cfg = OmegaConf.merge(OmegaConf.structured(SCHEMAS[f"{runner}_schema"]), state["config"])
    cfg.hardware.device, cfg.hardware.ddp, cfg.resume = device, False, False
    experiment = EXPERIMENTS[runner](cfg, DistInfo(device=command_line_device(device, key="device")))
    experiment.load_weights(state["experiment"])
    return experiment, state


def evaluate_checkpoint(path: Path, device: str, episodes: int) -> tuple[str, dict[str, Any]]:
    """Rebuild the experiment a checkpoint came from, load it, run its full evaluation; (runner, results)."""
    experiment, state = load_experiment(path, device)
    runner = experiment.runner
    results = experiment.full_evaluation(episodes=episodes or None)
    results["step"] = int(state["step"])
    results["checkpoint"] = str(path)
    names = list(experiment.task.ladder.names)
    results["training"] = level_results(state.get("history") or [], experiment.headline, names)
    return runner, results


def level_metrics(results: dict[str, Any], headline: str) -> list[str]:
    """The entries of a full evaluation that map the headline's levels to numbers (headline first)."""
    levels = set(results.get(headline) or {})
    return [headline] + [
        key
        for key, value in results.items()
        if key != headline
        and isinstance(value, dict)
        and levels & set(value)
        and all(isinstance(v, int | float) for v in value.values())
    ]


def evaluation_tables(runs: dict[str, dict[str, Any]], runners: dict[str, str]) -> str:
    """What ``runners.evaluate`` prints: for every run, each level's metrics from this evaluation beside
    the headline's final and best during training (from the checkpoint's history); bits per character
    per split where measured; with several runs of one family, the headline side by side."""
    out: list[str] = []
    for label, results in runs.items():
        headline = EXPERIMENTS[runners[label]].headline
        metrics = level_metrics(results, headline)
        training = results.get("training") or {}
        headers = ["level", *metrics, f"train {headline} final", f"train {headline} best"]
        rows = [
            [
                level,
                *(results[m].get(level) for m in metrics),
                (training.get(level) or {}).get("final"),
                (training.get(level) or {}).get("best"),
            ]
            for level in results[headline]
        ]
        out += [f"{label} ({runners[label]}, step {results.get('step')}, {results.get('checkpoint')}):"]
        out += [format_table(headers, rows), ""]
        if isinstance(results.get("bits_per_char"), dict):
            bpc = [[split, value] for split, value in results["bits_per_char"].items()]
            out += [format_table(["split", "bits_per_char"], bpc), ""]
    for runner in sorted(set(runners.values())):
        labels = [label for label in runs if runners[label] == runner]
        if len(labels) < 2:
            continue
        headline = EXPERIMENTS[runner].headline
        levels = list(dict.fromkeys(level for label in labels for level in runs[label][headline]))
        levels = [lv for lv in levels if sum(lv in runs[label][headline] for label in labels) > 1]
        if not levels:  # runs of different tasks: nothing to put side by side
            continue
        rows = [[level, *(runs[label][headline].get(level) for label in labels)] for level in levels]
        out += [f"{runner}: {headline} by level, run by run:", format_table(["level", *labels], rows), ""]
    return "\n".join(out).rstrip()


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Evaluate every checkpoint ``cfg.checkpoint`` names and write the combined report into ``out_dir``."""
    if cfg.get("on_task") is not None:  # another family's task (a generation checkpoint on the needle)
        return evaluate_on_task(cfg, out_dir)
    seed_everything(int(cfg.seed))
    paths = checkpoint_paths(cfg.checkpoint)
    labels = run_labels(paths, list(cfg.labels) if cfg.labels is not None else None)
    runs: dict[str, dict[str, Any]] = {}
    runners: dict[str, str] = {}
    with tqdm(total=len(paths), desc="evaluate", unit="checkpoint") as bar:
        for label, path in zip(labels, paths, strict=True):
            with ticking_status(bar, f"{label}:"):  # a full evaluation takes minutes: show it is alive
                runners[label], runs[label] = evaluate_checkpoint(path, cfg.device, int(cfg.episodes))
            bar.update(1)
    plots: list[str] = []
    for runner in sorted(set(runners.values())):
        same = {label: runs[label] for label in runs if runners[label] == runner}
        made = EXPERIMENTS[runner].comparison_plots(same, out_dir / "plots")
        plots += [str(p.relative_to(out_dir)) for p in made]
    report = {"runs": runs, "runners": runners, "plots": plots}
    write_report(report, out_dir / "report.json")
    print(evaluation_tables(runs, runners))
    print(f"Wrote {out_dir / 'report.json'} and {len(plots)} plot(s) for {len(runs)} run(s).")
    return report


register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg, hydra_run_dir())
    except ValueError as err:  # CheckpointError is one: a message for the command line, no traceback
        raise SystemExit(f"Error in the command line of runners.evaluate: {err}") from None


if __name__ == "__main__":
    sys.argv[1:] = command_line(sys.argv[1:])
    main()
