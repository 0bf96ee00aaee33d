"""The eight symmetries of a square maze (rotations and mirror images), for data augmentation.

A rotation or reflection of a maze is another maze with the same shortest-path length, whose oracle path
is the image of the original's. Training on all eight images of a few hundred fixed mazes shows the model
each one from every side without adding a new maze (``task.augment=true`` with fixed sets).

Symmetry ``k`` (0..7) mirrors the columns when ``k >= 4``, then turns the maze ``k % 4`` quarter turns
clockwise. A quarter turn clockwise moves the open direction ``a`` (0 up, 1 right, 2 down, 3 left) to
``a + 1``; mirroring the columns swaps right and left.
"""

from __future__ import annotations

import dataclasses

import torch

from envs.maze.grid import BLOCKED, MazeBatch

SYMMETRIES = 8


def _direction_map(k: int) -> list[int]:
    """Where each direction goes under symmetry ``k``."""
    mirror = [0, 3, 2, 1] if k >= 4 else [0, 1, 2, 3]
    return [(mirror[a] + k % 4) % 4 for a in range(4)]


def _cell_map(k: int, size: int) -> torch.Tensor:
    """(size * size,) int64: the cell that cell i becomes under symmetry ``k``."""
    row, col = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    if k >= 4:
        col = size - 1 - col
    for _ in range(k % 4):  # (r, c) -> (c, size - 1 - r): a quarter turn clockwise
        row, col = col, size - 1 - row
    return (row * size + col).flatten()


def _passage_table(k: int) -> torch.Tensor:
    """(17,) int64: the passage value a cell's value becomes under symmetry ``k`` (16, a wall, stays)."""
    moved = _direction_map(k)
    table = torch.zeros(BLOCKED + 1, dtype=torch.long)
    for value in range(BLOCKED):
        table[value] = sum(1 << moved[a] for a in range(4) if (value >> a) & 1)
    table[BLOCKED] = BLOCKED
    return table


def transform(mazes: MazeBatch, k: int) -> MazeBatch:
    """Every maze of ``mazes`` (square) under symmetry ``k``."""
    if mazes.height != mazes.width:
        raise ValueError(
            f"Rotating a {mazes.height}x{mazes.width} maze changes its shape; the symmetries apply to square "
            "mazes only (task.augment=false for other levels)."
        )
    if not 0 <= k < SYMMETRIES:
        raise ValueError(f"symmetry k must lie in 0..{SYMMETRIES - 1}, got {k}.")
    cells = _cell_map(k, mazes.height).to(mazes.passages.device)
    table = _passage_table(k).to(mazes.passages.device)
    passages = torch.empty_like(mazes.passages)
    passages[:, cells] = table[mazes.passages.long()].to(mazes.passages.dtype)
    dist = torch.empty_like(mazes.dist)
    dist[:, cells] = mazes.dist
    return dataclasses.replace(
        mazes, passages=passages, start=cells[mazes.start], goal=cells[mazes.goal], dist=dist
    )


def all_symmetries(mazes: MazeBatch) -> MazeBatch:
    """The 8 images of every maze: row ``k * n + i`` is maze ``i`` under symmetry ``k``."""
    return MazeBatch.cat([transform(mazes, k) for k in range(SYMMETRIES)])
