"""One table and one plot across the jobs of a Hydra multirun: ``python -m runners.summarize <folder>``.

    python -m runners.maze -m backbone=transformer,hebbian seed=0,1,2
    python -m runners.summarize multirun/2026-11-23/04-30-00

Every job folder under the multirun folder (one with ``.hydra/overrides.yaml`` and ``report.json``) is
read; the overrides whose values differ between jobs are the swept ones. Jobs that differ only in the
seed form a group, and each group gets the mean and the standard error over its seeds of: the
curriculum level reached, the headline metric's final value on every level (maze ``exact_path``,
recall ``exact_match``, generation ``reward``; the numbers of each job's end-of-run table) and the
level-independent metrics such as ``bits_per_char``. The table is printed and written as
``summary.csv`` and ``summary.md``, the plot as ``summary.png``, all into the multirun folder. The
runners' configs register :class:`runners.callbacks.SummarizeMultirun`, so this runs by itself at the
end of every ``-m`` run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from runners.report import (
    FRACTIONS,
    axis_label,
    final_and_best,
    format_table,
    level_independent,
    level_results,
    markdown_table,
    report_headline,
    save_figure,
    wrap_title,
)

SEED_KEYS = ("seed",)


@dataclass
class Job:
    """One multirun job: its folder, its overrides and the numbers its report.json gives."""

    folder: Path
    overrides: dict[str, str]
    metric: str | None = None
    level_reached: int | None = None
    level_names: list[str] = field(default_factory=list)
    finals: dict[str, float] = field(default_factory=dict)  # level -> the headline's final value
    extras: dict[str, float] = field(default_factory=dict)  # e.g. bits_per_char -> its final value
    error: str | None = None


def parse_overrides(lines: Sequence[str]) -> dict[str, str]:
    """``["backbone=hebbian", "+x=1"]`` -> ``{"backbone": "hebbian", "x": "1"}`` (a deletion ``~k``
    becomes ``{"~k": ""}``)."""
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        out[key.lstrip("+")] = value if sep else ""
    return out


def find_jobs(root: Path) -> list[Path]:
    """Job folders under ``root`` (any depth), those holding ``.hydra/overrides.yaml``, in natural order
    (``2`` before ``10``)."""

    def natural(path: Path) -> list[Any]:
        return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.relative_to(root).parts]

    folders = {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    return sorted((f for f in folders if f != root), key=natural)


def read_job(folder: Path) -> Job:
    """A job's overrides and its report's numbers; ``error`` says why a job has none (it failed or is
    still running)."""
    lines = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "overrides.yaml")) or []
    job = Job(folder, parse_overrides(lines))
    path = folder / "report.json"
    if not path.is_file():
        job.error = "no report.json (the job failed or has not finished)"
        return job
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        job.error = f"unreadable report.json ({err})"
        return job
    history = report.get("history") or []
    curriculum = report.get("curriculum") or {}
    job.metric = report_headline(report)
    job.level_names = [str(n) for n in curriculum.get("level_names") or []]
    job.level_reached = curriculum.get("level") if isinstance(curriculum.get("level"), int) else None
    if job.metric:
        levels = level_results(history, job.metric, job.level_names)
        job.finals = {name: r["final"] for name, r in levels.items()}
        for key in level_independent(history, job.metric):
            result = final_and_best(history, key)
            if result is not None and not key.startswith("reference_"):
                job.extras[key] = result["final"]
    return job


def mean_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)); se is None for n < 2."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


@dataclass
class Column:
    """A summary column: its header and how to read a job's value (None when the job lacks it)."""

    header: str
    kind: str  # "level" (curriculum level reached), "final" (headline per level), "extra"
    name: str = ""

    def value(self, job: Job) -> float | None:
        if self.kind == "level":
            return None if job.level_reached is None else float(job.level_reached)
        source = job.finals if self.kind == "final" else job.extras
        return source.get(self.name)


@dataclass
class Group:
    """Jobs that differ only in the seed: their swept values and each column's mean, se and values."""

    values: dict[str, str]
    jobs: list[Job]
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items()) or "all jobs"


@dataclass
class Summary:
    """A multirun's jobs grouped by their swept overrides (without the seed)."""

    root: Path
    swept: list[str]  # overrides whose values differ between jobs
    by: list[str]  # the swept ones that form groups (not seeds)
    seeds: list[str]  # the swept ones averaged over
    common: dict[str, str]
    metric: str | None
    levels: list[str]
    columns: list[Column]
    groups: list[Group]
    skipped: list[Job]


def summarize_jobs(root: Path, jobs: Sequence[Job], seed_keys: Sequence[str] = SEED_KEYS) -> Summary:
    """Group ``jobs`` by their swept overrides except the seed, and take mean and s.e. over seeds."""
    done = [j for j in jobs if j.error is None]
    keys = list(dict.fromkeys(k for j in jobs for k in j.overrides))
    swept = [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]
    common = {k: jobs[0].overrides[k] for k in keys if k not in swept and jobs and k in jobs[0].overrides}
    by = [k for k in swept if k not in seed_keys]
    metric = next((j.metric for j in done if j.metric), None)
    ladder = next((j.level_names for j in done if j.level_names), [])
    measured = [name for j in done for name in j.finals]
    levels = [n for n in ladder if n in measured] + [n for n in dict.fromkeys(measured) if n not in ladder]
    extras = list(dict.fromkeys(name for j in done for name in j.extras))
    columns = [Column("level reached", "level")]
    columns += [Column(f"{metric}/{level} final", "final", level) for level in levels]
    columns += [Column(f"{name} final", "extra", name) for name in extras]
    grouped: dict[tuple, list[Job]] = {}
    for job in done:
        grouped.setdefault(tuple(job.overrides.get(k, "") for k in by), []).append(job)
    groups = []
    for values, members in grouped.items():
        group = Group(dict(zip(by, values, strict=True)), members)
        for column in columns:
            found = [v for v in (column.value(j) for j in members) if v is not None]
            mean, se = mean_se(found)
            group.stats[column.header] = {"mean": mean, "se": se, "n": len(found), "values": found}
        groups.append(group)
    seeds = [k for k in swept if k in seed_keys]
    skipped = [j for j in jobs if j.error]
    return Summary(root, swept, by, seeds, common, metric, levels, columns, groups, skipped)


def _cell(stat: Mapping[str, Any], size: int) -> str:
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean']:.3f}" + (f" ± {stat['se']:.3f}" if stat["se"] is not None else "")
    return text + (f" ({stat['n']}/{size})" if stat["n"] < size else "")


def table(summary: Summary) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows: the group's swept values, its seed count, then ``mean ± se`` per column, with
    ``(k/n)`` where only k of the group's n jobs measured it."""
    headers = [*summary.by, "seeds", *(c.header for c in summary.columns)]
    rows = [
        [
            *(g.values[k] for k in summary.by),
            len(g.jobs),
            *(_cell(g.stats[c.header], len(g.jobs)) for c in summary.columns),
        ]
        for g in summary.groups
    ]
    return headers, rows


def write_csv(summary: Summary, path: Path) -> Path:
    """One row per group: the swept values, the number of seeds, and mean, se and n of every column."""
    headers = [*summary.by, "seeds"]
    for column in summary.columns:
        headers += [f"{column.header} mean", f"{column.header} se", f"{column.header} n"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        for group in summary.groups:
            row: list[Any] = [*(group.values[k] for k in summary.by), len(group.jobs)]
            for column in summary.columns:
                stat = group.stats[column.header]
                row += [stat["mean"], stat["se"], stat["n"]]
            writer.writerow(["" if v is None else v for v in row])
    return path


def describe(summary: Summary) -> list[str]:
    """The lines above the table: what was swept, what every job shares, what was skipped."""
    jobs = sum(len(g.jobs) for g in summary.groups)
    lines = [
        f"{summary.root}: {jobs} job(s) in {len(summary.groups)} group(s); swept: "
        f"{', '.join(summary.swept) or 'nothing'}; averaged over: {', '.join(summary.seeds) or 'no seeds'}.",
        f"Each cell: mean ± standard error over the group's seeds of the final value (the last evaluation) "
        f"of {summary.metric or 'each metric'}; level reached: the curriculum's level at the end; "
        "(k/n): measured in k of the group's n jobs.",
    ]
    if summary.common:
        lines.append("Shared overrides: " + " ".join(f"{k}={v}" for k, v in summary.common.items()))
    lines += [f"Skipped {job.folder.relative_to(summary.root)}: {job.error}." for job in summary.skipped]
    return lines


def plot_summary(summary: Summary, path: Path) -> Path:
    """The headline's final value per level, one bar per group: the mean with s.e. error bars, and each
    seed's value as a dot."""
    import matplotlib.pyplot as plt

    levels, groups = summary.levels, summary.groups
    width = 0.8 / max(len(groups), 1)
    figure, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(levels) * max(1, len(groups)) ** 0.5 + 3.0), 4.0))
    for i, group in enumerate(groups):
        offset = (i - (len(groups) - 1) / 2) * width
        stats = [group.stats[f"{summary.metric}/{level} final"] for level in levels]
        xs = [j + offset for j in range(len(levels))]
        means = [float("nan") if s["mean"] is None else s["mean"] for s in stats]
        errors = [s["se"] or 0.0 for s in stats]
        ax.bar(xs, means, width, yerr=errors, capsize=3, label=group.label, alpha=0.85)
        for x, stat in zip(xs, stats, strict=True):  # each seed beside its error bar
            dots = [x + 0.22 * width] * len(stat["values"])
            ax.plot(dots, stat["values"], "o", markersize=4, markerfacecolor="white", markeredgecolor="black")
    ax.set_xticks(range(len(levels)), levels, rotation=30, ha="right")
    ax.set_xlabel("level")
    ax.set_ylabel(f"final {axis_label(summary.metric or '')}", fontsize=9)
    if summary.metric in FRACTIONS:
        ax.set_ylim(0, 1.05)
    sizes = "/".join(str(n) for n in sorted({len(g.jobs) for g in groups}))
    title = f"{summary.metric} at the end, per level: mean ± s.e. over {sizes} seed(s) (dots: seeds)"
    ax.set_title(wrap_title(f"{title}\n{summary.root}", figure, 12), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="group", title_fontsize=8)
    return save_figure(figure, path)


def summarize(
    root: str | Path,
    seed_keys: Sequence[str] = SEED_KEYS,
    out_dir: str | Path | None = None,
    echo: bool = True,
) -> Summary:
    """Summarize the multirun at ``root``: print the table and write summary.csv, summary.md and
    summary.png (into ``out_dir``, by default ``root``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is not a folder; pass a multirun folder, e.g. multirun/<date>/<time>."
        )
    folders = find_jobs(root)
    if not folders:
        raise FileNotFoundError(
            f"{root} holds no Hydra job folder (none with .hydra/overrides.yaml); pass the folder that "
            "`python -m runners.<runner> -m ...` wrote, e.g. multirun/<date>/<time>."
        )
    summary = summarize_jobs(root, [read_job(f) for f in folders], seed_keys)
    out = Path(out_dir) if out_dir is not None else root
    out.mkdir(parents=True, exist_ok=True)
    headers, rows = table(summary)
    written = [write_csv(summary, out / "summary.csv")]
    if summary.groups and summary.levels:
        written.append(plot_summary(summary, out / "summary.png"))
    md = [
        f"# Multirun summary: {root}",
        "",
        *(f"{line}\n" for line in describe(summary)),
        markdown_table(headers, rows),
    ]
    if len(written) > 1:
        md += ["", "![summary](summary.png)"]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    written.insert(1, out / "summary.md")
    if echo:
        print("\n".join([*describe(summary), format_table(headers, rows)]))
        print("Wrote " + ", ".join(str(p) for p in written) + ".")
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m runners.summarize",
        description="One table (summary.csv, summary.md) and one plot (summary.png) across a Hydra "
        "multirun's jobs: mean and standard error over seeds, grouped by the swept overrides.",
    )
    parser.add_argument("folder", help="the multirun folder, e.g. multirun/2026-11-23/04-30-00")
    parser.add_argument(
        "--seed-key",
        action="append",
        default=None,
        help="an override that only replicates a run (averaged over, not grouped by); default: seed",
    )
    parser.add_argument("--out", default=None, help="where to write the files (default: the folder)")
    args = parser.parse_args(argv)
    try:
        summarize(args.folder, tuple(args.seed_key or SEED_KEYS), args.out)
    except FileNotFoundError as err:
        parser.exit(2, f"error: {err}\n")


if __name__ == "__main__":
    main()
