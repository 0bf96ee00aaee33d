"""The CNN maze encoder of the PoH-HRM seed: the maze as a wall image, Conv2d 1->16->32, pooled, to d_model.

The seed conditions every position on one global code of the maze (``x + g``). Here the maze comes as
the token prefix of ``envs.maze.tokens`` (one token per cell holding its open directions), so the encoder
first draws the (2h+1) x (2w+1) wall image of those cells (``envs.maze.render.wall_image``: 1 = wall,
0 = open), then runs the seed's stack: Conv2d(1, 16, 3) -> ReLU ->
Conv2d(16, 32, 3) -> ReLU -> AdaptiveAvgPool2d(4, 4) -> Linear(512, d_model).
"""

from __future__ import annotations

import torch
from torch import nn

from envs.maze import tokens as tok
from envs.maze.grid import BLOCKED
from envs.maze.render import wall_image as wall_image_of_passages

POOLED = 4


def wall_image(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 1, 2h+1, 2w+1) float wall image of the maze prefix of ``tokens`` (B, T >= h*w)."""
    if tokens.shape[1] < height * width:
        raise ValueError(
            f"The maze encoder reads the first {height * width} tokens ({height}x{width} cells) but the "
            f"sequence has only {tokens.shape[1]}; check backbone.maze_shape against the task's mazes."
        )
    passages = (tokens[:, : height * width] - tok.CELL0).clamp(0, BLOCKED)  # a fresh, contiguous tensor
    return wall_image_of_passages(passages, height, width).float()[:, None]


class MazeGridEncoder(nn.Module):
    """Tokens (B, T) -> (B, 1, d_model): one code of the maze in the prefix, to add to every position."""

    def __init__(self, d_model: int, height: int, width: int):
        super().__init__()
        self.height, self.width = height, width
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((POOLED, POOLED)),
        )
        self.proj = nn.Linear(32 * POOLED * POOLED, d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        image = wall_image(tokens, self.height, self.width).to(self.proj.weight.dtype)
        return self.proj(self.cnn(image).flatten(1))[:, None]
