"""Pictures of mazes: the thin-wall pixel image behind ``grid`` observations, RGB frames and ANSI text.

A maze of ``h x w`` cells is drawn on ``(2h+1) x (2w+1)`` pixels: cell (r, c) sits at pixel
(2r+1, 2c+1), the pixel between two neighbouring cells is open when a passage joins them, and corner
pixels are always wall.
"""

from __future__ import annotations

import numpy as np
import torch

from envs.maze.grid import BLOCKED

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
