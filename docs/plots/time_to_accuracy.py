"""Draw docs/plots/maze<N>_time_to_accuracy.png from the time-to-accuracy tables in docs/results.md.

The recorded tables are the one source of the numbers: every ``| minutes of training | ... |`` row and
the accuracy row under it become one curve, in the figure of its ``## Maze: NxN ...`` section and
labelled with its ``###`` heading (the section's own heading where it has none).

    python docs/plots/time_to_accuracy.py
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DOCS = Path(__file__).resolve().parent.parent
# issue 20: exact optimal path on fresh DFS mazes, (minutes of one H200, percent) per maze size
TARGETS = {12: (8.0, 99.0), 20: (20.0, 97.0)}


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def curves(markdown: str) -> dict[int, list[tuple[str, list[float], list[float]]]]:
    """Per maze size, (heading, minutes, accuracy in %) of each minutes-of-training table."""
    found: dict[int, list[tuple[str, list[float], list[float]]]] = defaultdict(list)
    lines = markdown.splitlines()
    size, heading = None, ""
    for index, line in enumerate(lines):
        if line.startswith("## "):
            match = re.match(r"## Maze: (\d+)x\1\b", line)
            size, heading = (int(match.group(1)) if match else None), line[3:].strip()
        elif line.startswith("### "):
            heading = line[4:].strip()
        if size is not None and line.startswith("| minutes of training |"):
            values = lines[index + 2]  # the separator row lies between
            minutes = [float(v) for v in cells(line)[1:]]
            accuracy = [float(re.sub(r"[*%]", "", v)) for v in cells(values)[1:]]
            found[size].append((heading, minutes, accuracy))
    return dict(found)


def draw(size: int, runs: list[tuple[str, list[float], list[float]]]) -> Path:
    """One figure for one maze size: a line per run, the issue's target as dashed lines."""
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for heading, minutes, accuracy in runs:
        axes.plot(minutes, accuracy, marker="o", markersize=3, label=heading)
    target_minutes, target_percent = TARGETS[size]
    axes.axhline(target_percent, color="grey", linestyle="--", linewidth=0.8)
    axes.axvline(target_minutes, color="grey", linestyle="--", linewidth=0.8)
    label = f"target: {target_percent:g}% within {target_minutes:g} min"
    axes.annotate(label, (target_minutes, target_percent), xytext=(-150, -30), textcoords="offset points",
                  fontsize=8, color="grey")
    longest = max(max(minutes) for _, minutes, _ in runs)
    axes.set(xlabel="minutes of training (one H200)", ylabel="exact optimal path (%), 1,024 fresh mazes",
             title=f"maze_fast on {size}x{size} DFS mazes: teacher-forced checks during training",
             xlim=(0, max(longest, target_minutes) + 0.5), ylim=(0, 101))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    out = DOCS / "plots" / f"maze{size}_time_to_accuracy.png"
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def main() -> None:
    for size, runs in curves((DOCS / "results.md").read_text()).items():
        print(f"Wrote {draw(size, runs)}")


if __name__ == "__main__":
    main()
