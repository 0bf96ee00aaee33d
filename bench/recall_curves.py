"""Recall accuracy against wall-clock minutes for each memory backbone (issue 20's per-backbone curves).

Trains ``runners.recall`` once per (task, backbone) on one fixed level (no curriculum), for the same
wall-clock budget, and reads the exact match of every periodic evaluation (fresh episodes) against the
run's wall-clock minutes. Prints one table (final and best exact match, steps, minutes to 90%) and
writes ``<out>/recall_curves.md``, ``.json`` and ``.png`` (a panel per task, a line per backbone) and each
run's folder under ``<out>/runs/``.

    python -m bench.recall_curves --device cuda --minutes 2 --out runs/recall_curves
    python -m bench.recall_curves --device cpu --minutes 0.5 --tasks copy --backbones transformer hebbian \\
        --overrides backbone.d_model=64 backbone.n_layers=2 --out /tmp/rc
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from bench.harness import device_name, train_runner

LEVELS = {"copy": "len16-v16", "associative": "kv4-v16-q4-t16", "needle": "ctx1k"}  # each task's default
BACKBONES = ("transformer", "hebbian", "external", "titans")  # runners/conf/backbone/<name>.yaml
REACHED = 0.9  # the "minutes to" column: first evaluation at or above this exact match


def curve(report: dict[str, Any], level: str) -> list[tuple[float, float]]:
    """(wall-clock minutes of the run, exact match at ``level``) of every periodic evaluation."""
    key = f"exact_match/{level}"
    return [(entry["minutes"], float(entry[key])) for entry in report["history"] if key in entry]


def summary(task: str, backbone: str, level: str, report: dict[str, Any]) -> dict[str, Any]:
    """One table row: the run's steps, its curve, final and best exact match, minutes to ``REACHED``."""
    points = curve(report, level)
    reached = next((minutes for minutes, exact in points if exact >= REACHED), None)
    return {
        "task": task,
        "backbone": backbone,
        "level": level,
        "steps": report["steps_done"],
        "evaluations": len(points),
        "final": points[-1][1] if points else None,
        "best": max(exact for _, exact in points) if points else None,
        f"minutes_to_{REACHED:g}": reached,
        "curve": points,
    }


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    columns = ["task", "level", "backbone", "steps", "evaluations", "final", "best"]
    columns.append(f"minutes_to_{REACHED:g}")
    lines = [header, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [row[c] if not isinstance(row[c], float) else f"{row[c]:.3f}" for c in columns]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """A panel per task: exact match on fresh episodes against minutes, a line per backbone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(row["task"] for row in rows))
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        for row in (r for r in rows if r["task"] == task):
            minutes, exact = zip(*row["curve"], strict=True) if row["curve"] else ((), ())
            axis.plot(minutes, exact, marker="o", markersize=3, label=row["backbone"])
        level = next(r["level"] for r in rows if r["task"] == task)
        axis.set(title=f"{task} ({level})", xlabel="minutes of wall clock", ylim=(-0.02, 1.02))
        axis.set_ylabel("exact match, fresh episodes")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--minutes", type=float, default=2.0, help="wall-clock budget of each run")
    parser.add_argument("--tasks", nargs="+", default=list(LEVELS), choices=list(LEVELS))
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--level", nargs="*", default=[], metavar="TASK=LEVEL", help="e.g. copy=len8-v8")
    parser.add_argument("--eval-every", type=int, default=100, help="steps between evaluations")
    parser.add_argument("--steps", type=int, default=None, help="trainer.steps (the schedule's length)")
    parser.add_argument("--overrides", nargs="*", default=[], help="runner overrides for every run")
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    levels = dict(LEVELS)
    for item in args.level:
        task, sep, level = item.partition("=")
        if not sep or task not in LEVELS:
            raise SystemExit(f"--level {item}: write TASK=LEVEL with TASK one of {', '.join(LEVELS)}")
        levels[task] = level
    device = torch.device(args.device)
    steps = [f"trainer.steps={args.steps}"] if args.steps else []
    rows = []
    for task in args.tasks:
        for backbone in args.backbones:
            overrides = [
                f"task={task}", f"backbone={backbone}", f"task.levels=[{levels[task]}]", "curriculum=none",
                f"trainer.eval_every={args.eval_every}", *steps, *args.overrides,
            ]
            run_dir = args.out / "runs" / f"{task}_{backbone}"
            print(f"[recall_curves] {task} {levels[task]} with {backbone}: {args.minutes} min", flush=True)
            report = train_runner("recall", overrides, device, run_dir, args.minutes)
            rows.append(summary(task, backbone, levels[task], report))
    title = f"recall exact match against minutes, {args.minutes:g} min a run on {device_name(device)}"
    command = "python -m bench.recall_curves " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown(rows, f"{title}\n\n`{command}`")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recall_curves.md").write_text(table + "\n")
    (args.out / "recall_curves.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    plot(rows, args.out / "recall_curves.png", title)
    print(table)
    print(f"Wrote {args.out}/recall_curves.md, .json and .png")
    return rows


if __name__ == "__main__":
    main()
