"""Maze difficulty levels and the default ladder.

A :class:`MazeLevel` names a size, a generator and a minimum shortest-path length (the "hard" filter);
``generator="layout"`` levels hold one fixed maze given from outside as text (see :mod:`envs.maze.layout`).

Default ladder (easiest first): DFS mazes 5x5, 6x6, 7x7, 8x8, 10x10, 12x12, 16x16, 20x20, 30x30, and
``30x30-hard`` (30x30 DFS mazes whose start is more than 110 moves from the goal, as in Maze-Hard).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

GENERATORS = ("dfs", "prim", "wilson", "division", "open", "layout")
PERFECT_GENERATORS = ("dfs", "prim", "wilson", "division")
MIN_SIZE = 2
MAX_SIZE = 128


@dataclasses.dataclass(frozen=True)
class MazeLevel:
    """One difficulty level of the maze task.

    height, width: size in cells (2..128).
    generator:     "dfs" (recursive backtracker), "prim", "wilson" (uniform spanning tree), "division"
                   (recursive division), "open" (random wall cells at ``wall_density``) or "layout".
    min_path:      the start is at least this many moves from the goal (1 = any distinct cells).
    wall_density:  fraction of wall cells for "open" grids.
    layout:        the maze text for generator="layout" (``#`` wall, space open, ``S`` start, ``G`` goal).
    """

    name: str
    height: int
    width: int
    generator: str = "dfs"
    min_path: int = 1
    wall_density: float = 0.3
    layout: str | None = None

    def __post_init__(self) -> None:
        for field in ("height", "width"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or not MIN_SIZE <= value <= MAX_SIZE:
                raise ValueError(
                    f"MazeLevel {self.name!r}: {field} must be an int in [{MIN_SIZE}, {MAX_SIZE}], "
                    f"got {value!r}."
                )
        if self.generator not in GENERATORS:
            raise ValueError(
                f"MazeLevel {self.name!r}: unknown generator {self.generator!r}; "
                f"use one of {list(GENERATORS)}."
            )
        if (self.generator == "layout") != (self.layout is not None):
            raise ValueError(
                f"MazeLevel {self.name!r}: pass layout= exactly when generator='layout' "
                "(use envs.maze.layout.layout_level to build one from text)."
            )
        if not isinstance(self.min_path, int) or not 1 <= self.min_path <= self.cells - 1:
            raise ValueError(
                f"MazeLevel {self.name!r}: min_path must be an int in [1, {self.cells - 1}], "
                f"got {self.min_path!r}."
            )
        if not 0.0 <= self.wall_density < 1.0:
            raise ValueError(
                f"MazeLevel {self.name!r}: wall_density must lie in [0, 1), got {self.wall_density!r}."
            )

    @property
    def cells(self) -> int:
        return self.height * self.width


def default_levels() -> list[MazeLevel]:
    """The documented default ladder, 5x5 to 30x30-hard."""
    sizes = (5, 6, 7, 8, 10, 12, 16, 20, 30)
    ladder = [MazeLevel(f"{s}x{s}", s, s) for s in sizes]
    ladder.append(MazeLevel("30x30-hard", 30, 30, min_path=111))
    return ladder


def generator_variants(ladder: Sequence[MazeLevel], generators: Sequence[str]) -> list[MazeLevel]:
    """Each ladder level drawn by each of ``generators`` it does not already use (``<name>-<generator>``,
    same size and ``min_path``): how well a run trained on one generator's mazes does on another's.
    Layout levels hold one given maze and have no variants."""
    return [
        MazeLevel(f"{lv.name}-{g}", lv.height, lv.width, generator=g, min_path=lv.min_path)
        for g in generators
        for lv in ladder
        if lv.generator not in (g, "layout")
    ]
