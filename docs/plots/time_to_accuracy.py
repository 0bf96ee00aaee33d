"""Draw docs/plots/maze12_time_to_accuracy.png from the time-to-accuracy tables in docs/results.md.

The recorded tables are the one source of the numbers: every ``| minutes of training | ... |`` row and
the accuracy row under it become one curve, labelled with the heading of its section.

    python docs/plots/time_to_accuracy.py
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

DOCS = Path(__file__).resolve().parent.parent
TARGET = (8.0, 99.0)  # issue 20: >= 99% exact optimal path on fresh 12x12 DFS mazes within 8 GPU-minutes


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def curves(markdown: str) -> list[tuple[str, list[float], list[float]]]:
    """(section heading, minutes, accuracy in %) of each minutes-of-training table."""
    found, heading = [], ""
    lines = markdown.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("### "):
            heading = line[4:].strip()
        if line.startswith("| minutes of training |"):
            values = lines[index + 2]  # the separator row lies between
            minutes = [float(v) for v in cells(line)[1:]]
            accuracy = [float(re.sub(r"[*%]", "", v)) for v in cells(values)[1:]]
            found.append((heading, minutes, accuracy))
    return found


def main() -> None:
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for heading, minutes, accuracy in curves((DOCS / "results.md").read_text()):
        axes.plot(minutes, accuracy, marker="o", markersize=3, label=heading)
    axes.axhline(TARGET[1], color="grey", linestyle="--", linewidth=0.8)
    axes.axvline(TARGET[0], color="grey", linestyle="--", linewidth=0.8)
    axes.annotate("target: 99% within 8 min", (TARGET[0], TARGET[1]), xytext=(-150, -30),
                  textcoords="offset points", fontsize=8, color="grey")
    axes.set(xlabel="minutes of training (one H200)", ylabel="exact optimal path (%), 1,024 fresh mazes",
             title="maze_fast on 12x12 DFS mazes: teacher-forced checks during training", xlim=(0, 8.5),
             ylim=(0, 101))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    out = DOCS / "plots" / "maze12_time_to_accuracy.png"
    figure.savefig(out, dpi=120)
    print(f"Wrote {out}")


if __name__ == "__main__":
    main()
