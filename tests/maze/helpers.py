"""Shared helpers for the maze tests: small ladders and a brute-force shortest path."""

from __future__ import annotations

import torch

from envs.maze import MazeLevel, generate_mazes, layout_level, to_text
from envs.maze.grid import COL_STEP, ROW_STEP

SMALL = [MazeLevel("4x4", 4, 4), MazeLevel("5x5", 5, 5), MazeLevel("3x6-open", 3, 6, generator="open")]


def brute_force_distance(passages: list[int], height: int, width: int, start: int, goal: int) -> int:
    """Length of the shortest simple path from start to goal by exhaustive search (-1 if none)."""
    best = -1

    def walk(cell: int, length: int, seen: set[int]) -> None:
        nonlocal best
        if best != -1 and length >= best:
            return
        if cell == goal:
            best = length
            return
        r, c = divmod(cell, width)
        for a in range(4):
            if passages[cell] & (1 << a) and passages[cell] != 16:
                nxt = (r + ROW_STEP[a]) * width + c + COL_STEP[a]
                if nxt not in seen:
                    walk(nxt, length + 1, seen | {nxt})

    walk(start, 0, {start})
    return best


def layout_levels(count: int, seed: int = 0) -> list[MazeLevel]:
    """``count`` fixed mazes of mixed sizes as layout levels (each level always yields its maze)."""
    gen = torch.Generator().manual_seed(seed)
    levels = []
    for i in range(count):
        size = 2 + i % 3
        mazes = generate_mazes(MazeLevel("g", size, size + 1), 1, gen)
        levels.append(layout_level(to_text(mazes), name=f"fixed-{i}"))
    return levels
