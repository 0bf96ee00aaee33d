"""Mazes from outside: text layouts and arrays, as public maze datasets (e.g. Maze-Hard) store them.

Every character (or array entry) is one cell: ``#`` a wall cell, a space (or ``.``/``o``/``_``) an open
cell, ``S`` the start and ``G`` the goal; moves connect 4-adjacent open cells. Numeric arrays use 0 open,
1 wall, 2 start, 3 goal. A thin-walled maze drawn as text (``to_text``) therefore reads back as a
``(2h+1) x (2w+1)`` grid of cells with the same paths, each twice as long.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch

from envs.maze.grid import BLOCKED, MazeBatch, bfs_distances, neighbours
from envs.maze.levels import MAX_SIZE, MazeLevel
from envs.maze.render import cell_pixel, wall_image

WALL_CHARS = "#"
OPEN_CHARS = " ._o"
_CODES = {0: " ", 1: "#", 2: "S", 3: "G"}


def normalize_layout(layout: str | Sequence[str] | np.ndarray) -> str:
    """The canonical text of a layout (rows joined by newlines) from text, a list of rows or an array."""
    if isinstance(layout, np.ndarray):
        if layout.ndim != 2:
            raise ValueError(f"A maze array must be 2-D (rows, cols), got shape {layout.shape}.")
        check_layout_size(*layout.shape)
        if layout.dtype.kind in "iub":
            codes = layout.astype(np.int64)
            bad = sorted(set(np.unique(codes).tolist()) - set(_CODES))
            if bad:
                raise ValueError(f"Maze array values {bad} unknown; use 0 open, 1 wall, 2 start, 3 goal.")
            rows = ["".join(_CODES[v] for v in row) for row in codes.tolist()]
        elif layout.dtype.kind == "U":
            rows = ["".join(row) for row in layout.tolist()]
        else:
            raise ValueError(
                f"A maze array must hold ints (0/1/2/3) or characters, got dtype {layout.dtype}."
            )
    elif isinstance(layout, str):
        # Only empty lines around the maze are dropped (a text's leading and trailing newlines): a line
        # of spaces is a row of open cells, kept like any other row.
        rows = layout.replace("\r\n", "\n").split("\n")
        while rows and rows[0] == "":
            rows = rows[1:]
        while rows and rows[-1] == "":
            rows = rows[:-1]
    elif isinstance(layout, Sequence) and not isinstance(layout, bytes | bytearray):
        rows = list(layout)
        for i, row in enumerate(rows):
            if not isinstance(row, str):
                raise ValueError(
                    f"Row {i} of the maze layout is a {type(row).__name__}, not text; give each row as a "
                    "str such as '#S  #'."
                )
    else:
        raise ValueError(
            f"A maze layout must be text, a list of rows or a 2-D array, got {type(layout).__name__}."
        )
    if not rows:
        raise ValueError("The maze layout is empty; give rows of '#' (wall), ' ' (open), 'S' and 'G'.")
    check_layout_size(len(rows), max(len(row) for row in rows))
    for i, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(
                f"Maze layout row {i} has {len(row)} cells but row 0 has {len(rows[0])}; every row needs "
                "the same number of cells (write open cells as spaces, not as missing characters)."
            )
    return "\n".join(rows)


def check_layout_size(height: int, width: int) -> None:
    """Refuse a layout larger than MazeLevel allows (the token vocabulary has 128 row and column tokens)."""
    if height > MAX_SIZE or width > MAX_SIZE:
        raise ValueError(
            f"A maze layout is at most {MAX_SIZE}x{MAX_SIZE} cells (MazeLevel's cap, which the maze token "
            f"vocabulary covers), got {height}x{width}; crop or downscale the maze."
        )


def parse_layout(layout: str | Sequence[str] | np.ndarray) -> MazeBatch:
    """One maze (a MazeBatch of length 1) from a layout; raises ValueError naming what is wrong."""
    rows = normalize_layout(layout).split("\n")
    height, width = len(rows), len(rows[0])
    if height < 2 or width < 2:
        raise ValueError(f"A maze layout needs at least 2x2 cells, got {height}x{width}.")
    grid = np.array([list(row) for row in rows])
    known = set(WALL_CHARS + OPEN_CHARS + "SG")
    bad = sorted(set(np.unique(grid).tolist()) - known)
    if bad:
        raise ValueError(f"Unknown maze character(s) {bad}; use '#' wall, ' ' open, 'S' start, 'G' goal.")
    for mark in "SG":
        if int((grid == mark).sum()) != 1:
            raise ValueError(f"A maze layout needs exactly one {mark!r}, found {int((grid == mark).sum())}.")
    blocked = torch.from_numpy(np.isin(grid, list(WALL_CHARS)).reshape(1, -1))
    nbr, valid = neighbours(height, width)
    legal = ~blocked[:, nbr] & valid & ~blocked[:, :, None]
    bits = torch.tensor([1, 2, 4, 8], dtype=torch.uint8)
    passages = (legal.to(torch.uint8) * bits).sum(dim=2, dtype=torch.uint8)
    passages = torch.where(blocked, BLOCKED, passages).to(torch.uint8)
    start = torch.tensor([int(np.flatnonzero(grid.reshape(-1) == "S")[0])])
    goal = torch.tensor([int(np.flatnonzero(grid.reshape(-1) == "G")[0])])
    dist = bfs_distances(passages, goal, height, width)
    if int(dist[0, start[0]]) < 1:
        raise ValueError("In this maze layout the goal 'G' cannot be reached from the start 'S'.")
    return MazeBatch(height, width, passages, start, goal, dist)


def layout_level(layout: str | Sequence[str] | np.ndarray, name: str | None = None) -> MazeLevel:
    """A MazeLevel that always yields this maze (checked now, so bad layouts fail at once)."""
    text = normalize_layout(layout)
    maze = parse_layout(text)
    if name is None:
        name = (
            f"layout-{maze.height}x{maze.width}-{hashlib.blake2b(text.encode(), digest_size=4).hexdigest()}"
        )
    return MazeLevel(name, maze.height, maze.width, generator="layout", layout=text)


def to_text(mazes: MazeBatch, index: int = 0, agent: int | None = None) -> str:
    """Draw maze ``index`` with thin walls as ``(2h+1) x (2w+1)`` text; ``A`` marks ``agent`` (a cell)."""
    image = wall_image(mazes.passages[index : index + 1], mazes.height, mazes.width)[0].cpu().numpy()
    chars = np.where(image, "#", " ").astype("<U1")
    for cell, mark in ((int(mazes.start[index]), "S"), (int(mazes.goal[index]), "G"), (agent, "A")):
        if cell is not None:
            r, c = cell_pixel(cell, mazes.width)
            chars[r, c] = mark
    return "\n".join("".join(row) for row in chars)
