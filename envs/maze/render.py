"""Pictures of mazes: the thin-wall pixel image behind ``grid`` observations, RGB frames, ANSI text, and
walks decoded from token sequences (``walked_path``) drawn as figures (``rollout_figure``; a batch of final
observations: ``walk_figures``).

A maze of ``h x w`` cells is drawn on ``(2h+1) x (2w+1)`` pixels: cell (r, c) sits at pixel
(2r+1, 2c+1), the pixel between two neighbouring cells is open when a passage joins them, and corner
pixels are always wall.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from envs.maze import tokens as tok
from envs.maze.grid import BLOCKED, COL_STEP, ROW_STEP
from envs.maze.levels import MazeLevel

COLORS = {
    "wall": (40, 40, 40),
    "open": (245, 245, 245),
    "agent": (220, 50, 50),
    "goal": (40, 170, 70),
}


def wall_image(passages: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(n, 2h+1, 2w+1) bool, True where a pixel is wall, from passages (n, h*w)."""
    n = passages.shape[0]
    cells = passages.view(n, height, width)
    image = torch.ones(n, 2 * height + 1, 2 * width + 1, dtype=torch.bool, device=passages.device)
    image[:, 1::2, 1::2] = cells == BLOCKED
    image[:, 1::2, 2:-1:2] = (cells[:, :, :-1] & 2) == 0
    image[:, 2:-1:2, 1::2] = (cells[:, :-1, :] & 4) == 0
    return image


def cell_pixel(cell: int, width: int) -> tuple[int, int]:
    """Pixel (row, col) of a flat cell index in the wall image."""
    r, c = divmod(int(cell), width)
    return 2 * r + 1, 2 * c + 1


def rgb_frame(walls: np.ndarray, agent: tuple[int, int], goal: tuple[int, int], scale: int = 8) -> np.ndarray:
    """An (H*scale, W*scale, 3) uint8 RGB frame of a wall image with the agent and goal marked."""
    frame = np.where(walls[..., None], np.uint8(COLORS["wall"]), np.uint8(COLORS["open"])).astype(np.uint8)
    frame[goal] = COLORS["goal"]
    frame[agent] = COLORS["agent"]
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def ansi_text(walls: np.ndarray, agent: tuple[int, int], goal: tuple[int, int]) -> str:
    """The wall image as text: ``#`` wall, space open, ``A`` agent, ``G`` goal."""
    chars = np.where(walls, "#", " ").astype("<U1")
    chars[goal] = "G"
    chars[agent] = "A"
    return "\n".join("".join(row) for row in chars) + "\n"


@dataclasses.dataclass(frozen=True)
class WalkedPath:
    """A maze and the walk an agent made in it, decoded from a token sequence (prefix + moves).

    ``cells[i]`` is the agent's cell after ``i`` moves (``cells[0]`` the start); a move into a wall leaves
    the agent where it was and is listed in ``bumps`` (by move index).
    """

    level: MazeLevel
    passages: np.ndarray
    start: int
    goal: int
    moves: list[int]
    cells: list[int]
    bumps: list[int]

    @property
    def visits(self) -> dict[int, int]:
        """How often the walk stood on each cell it reached (the start counts once at step 0)."""
        counts: dict[int, int] = {}
        for cell in self.cells:
            counts[cell] = counts.get(cell, 0) + 1
        return counts

    @property
    def revisited(self) -> list[int]:
        """Cells entered again after the walk had left them (staying put after a bump does not count)."""
        seen, again = {self.cells[0]}, []
        for before, cell in zip(self.cells, self.cells[1:]):
            if cell != before and cell in seen and cell not in again:
                again.append(cell)
            seen.add(cell)
        return again

    @property
    def reached_goal(self) -> bool:
        return self.goal in self.cells


def walked_path(tokens: np.ndarray | torch.Tensor | Sequence[int], level: MazeLevel) -> WalkedPath:
    """Decode a maze token sequence (envs.maze.tokens: cells, start, goal, separator, moves) at ``level``.

    Moves are read up to the first token that is not a move (padding or EOS) and replayed on the maze's
    passages, so the walk is exactly the one the env stepped.
    """
    values = [int(t) for t in (tokens.tolist() if hasattr(tokens, "tolist") else tokens)]
    h, w = level.height, level.width
    cells = h * w
    if len(values) < tok.prefix_length(level):
        raise ValueError(
            f"A {h}x{w} maze sequence has at least {tok.prefix_length(level)} tokens (cells, start, goal, "
            f"separator), got {len(values)}; decode with the level the sequence was made at."
        )
    passages = np.array(values[:cells], dtype=np.int64) - tok.CELL0
    if passages.min() < 0 or passages.max() > BLOCKED:
        raise ValueError(f"The first {cells} tokens are not maze cells of level {level.name!r}.")
    start = (values[cells] - tok.ROW0) * w + values[cells + 1] - tok.COL0
    goal = (values[cells + 2] - tok.ROW0) * w + values[cells + 3] - tok.COL0
    moves = []
    for value in values[tok.prefix_length(level) :]:
        if not tok.MOVE0 <= value < tok.MOVE0 + 4:
            break
        moves.append(value - tok.MOVE0)
    walk, bumps = [start], []
    for i, move in enumerate(moves):
        here = walk[-1]
        if (passages[here] >> move) & 1:
            walk.append(here + (ROW_STEP[move] * w + COL_STEP[move]))
        else:
            walk.append(here)
            bumps.append(i)
    return WalkedPath(level, passages.astype(np.uint8), start, goal, moves, walk, bumps)


def rollout_figure(
    tokens: np.ndarray | torch.Tensor | Sequence[int], level: MazeLevel, success: bool, optimal: bool
) -> Any:
    """A matplotlib Figure of the walk in a maze token sequence: the path coloured from its first step to
    its last (so doubling back shows), revisited cells ringed, wall bumps crossed, start and goal marked."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    walk = walked_path(tokens, level)
    w = level.width
    walls = wall_image(torch.as_tensor(walk.passages)[None], level.height, w)[0].numpy()
    figure = Figure(figsize=(3.4, 3.9))
    ax = figure.subplots()
    ax.imshow(walls, cmap="gray_r", vmin=0, vmax=1.4, interpolation="nearest")
    pixel = 210.0 / max(walls.shape)  # points per maze pixel: markers scale with the maze
    points = np.array([cell_pixel(cell, w)[::-1] for cell in walk.cells], dtype=float)  # (x, y)
    steps = max(len(walk.moves), 1)
    colormap = ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256)))  # no pale yellow end
    if len(points) > 1:
        path = LineCollection(_spread_segments(points), cmap=colormap, linewidths=min(2.2, 0.3 * pixel))
        path.set_array(np.arange(len(points) - 1) / steps)
        path.set_clim(0.0, 1.0)
        path.set_zorder(2)
        ax.add_collection(path)
    revisited = np.array([cell_pixel(cell, w)[::-1] for cell in walk.revisited], dtype=float).reshape(-1, 2)
    ax.scatter(*revisited.T, s=(1.3 * pixel) ** 2, facecolors="none", edgecolors="tab:cyan", zorder=4)
    ax.scatter(*cell_pixel(walk.start, w)[::-1], marker="s", color="tab:blue", s=(1.1 * pixel) ** 2, zorder=5)
    ax.scatter(*cell_pixel(walk.goal, w)[::-1], marker="*", color="tab:green", s=(1.6 * pixel) ** 2, zorder=5)
    bumped = points[[i + 1 for i in walk.bumps]].reshape(-1, 2)
    ax.scatter(*bumped.T, marker="x", color="tab:red", s=(0.9 * pixel) ** 2, zorder=6)
    handles = [
        Line2D([], [], marker="s", color="tab:blue", linestyle="", label="start"),
        Line2D([], [], marker="*", color="tab:green", markersize=10, linestyle="", label="goal"),
        Line2D([], [], color=colormap(0.5), linewidth=2.2, label="path (dark: first step, light: last)"),
        Line2D(
            [],
            [],
            marker="o",
            markerfacecolor="none",
            markeredgecolor="tab:cyan",
            linestyle="",
            label="revisited cell",
        ),
        Line2D([], [], marker="x", color="tab:red", linestyle="", label="bumped a wall"),
    ]
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=2, fontsize=6, frameon=False
    )
    verdict = "optimal" if optimal else ("solved" if success else "failed")
    ax.set_title(
        f"{level.name}: {len(walk.moves)} moves, {verdict}, {len(walk.revisited)} cells revisited", fontsize=8
    )
    ax.axis("off")
    figure.tight_layout()
    return figure


def walk_figures(
    tokens: torch.Tensor, level: MazeLevel, success: torch.Tensor, optimal: torch.Tensor, count: int
) -> list[Any]:
    """:func:`rollout_figure` of the first ``count`` walks in a batch of final observations at ``level``
    (``tokens`` (n, T), each episode's ``success`` and ``optimal`` flags (n,))."""
    rows = tokens[: max(0, count)].cpu().numpy()
    return [rollout_figure(row, level, bool(success[i]), bool(optimal[i])) for i, row in enumerate(rows)]


def _spread_segments(points: np.ndarray) -> np.ndarray:
    """(n-1, 2, 2) line segments between consecutive points, each later pass over the same corridor
    shifted sideways (alternating, within the corridor), so walking back and forth shows as parallel lines."""
    segments = np.stack([points[:-1], points[1:]], axis=1)
    passes: dict[tuple[float, ...], int] = {}
    shifts = (0.0, 0.3, -0.3, 0.15, -0.15, 0.45, -0.45)
    for i, (a, b) in enumerate(segments):
        key = tuple(sorted((tuple(a), tuple(b))))
        count = passes.get(key, 0)
        passes[key] = count + 1
        direction = b - a
        length = float(np.hypot(*direction))
        if count and length:
            normal = np.array([-direction[1], direction[0]]) / length
            segments[i] = segments[i] + normal * shifts[count % len(shifts)]
    return segments
