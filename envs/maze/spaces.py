"""Observation layouts shared by MazeEnv and MazeVectorEnv, sized for the largest level of the ladder.

``grid``: (3, 2H+1, 2W+1) uint8 channels-first image (walls, agent, goal; 0 or 255), H x W the ladder's
largest size; a smaller maze sits at the top-left and the rest is wall. ``grid_scale=s`` repeats every
pixel s x s times (SB3's CnnPolicy/NatureCNN needs at least 36 x 36: s=4 for 5x5 mazes).
``tokens``: the sequence layout of envs.common.spaces.sequence_space with the maze token language
(envs.maze.tokens); it holds the prefix and every move up to the step limit.
``egocentric``: (2, k, k) uint8 (walls, goal) centred on the agent's pixel.
``walls``: the grid's information at a fraction of its cost: ``{"walls": (2H+1, 2W+1) uint8`` (the grid's
wall plane, written only when an episode starts), ``"agent": (2,) int64, "goal": (2,) int64}`` (row, col)
cells; :func:`envs.maze.walls.grid_from_walls` rebuilds the ``grid`` image from it exactly.
"""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np

from envs.common.spaces import sequence_space
from envs.maze import tokens as tok
from envs.maze.levels import MazeLevel

OBS_MODES = ("grid", "tokens", "egocentric", "walls")


def step_limit(optimal_length: int, factor: float) -> int:
    """Steps before truncation: ``ceil(factor * optimal_length)``."""
    return math.ceil(factor * optimal_length)


@dataclasses.dataclass(frozen=True)
class MazeObsSpec:
    """Shapes of one observation mode for a ladder (all levels share them)."""

    mode: str
    height: int
    width: int
    view_size: int
    max_len: int
    grid_scale: int = 1

    @classmethod
    def for_levels(
        cls,
        levels: list[MazeLevel],
        mode: str,
        step_limit_factor: float,
        view_size: int,
        grid_scale: int = 1,
    ) -> MazeObsSpec:
        if mode not in OBS_MODES:
            raise ValueError(f"Unknown obs_mode {mode!r}; use one of {list(OBS_MODES)}.")
        if not isinstance(view_size, int) or view_size < 3 or view_size % 2 == 0:
            raise ValueError(f"view_size must be an odd int >= 3 (pixels), got {view_size!r}.")
        if not isinstance(grid_scale, int) or grid_scale < 1:
            raise ValueError(
                f"grid_scale must be an int >= 1 (screen pixels a maze pixel), got {grid_scale!r}."
            )
        if mode == "walls" and grid_scale != 1:
            raise ValueError(
                f"grid_scale={grid_scale} has no effect on obs_mode='walls' (unscaled walls and cells); "
                "drop grid_scale and rebuild a scaled image with "
                "envs.maze.walls.grid_from_walls(..., grid_scale=s)."
            )
        if not step_limit_factor >= 1.0:
            raise ValueError(
                f"step_limit_factor must be >= 1 (a multiple of the optimal length), "
                f"got {step_limit_factor!r}."
            )
        max_len = max(tok.prefix_length(lv) + step_limit(lv.cells - 1, step_limit_factor) for lv in levels)
        return cls(
            mode,
            max(lv.height for lv in levels),
            max(lv.width for lv in levels),
            view_size,
            max_len,
            grid_scale,
        )

    @property
    def pixels(self) -> tuple[int, int]:
        return 2 * self.height + 1, 2 * self.width + 1

    def fits(self, level: MazeLevel, step_limit_factor: float) -> bool:
        """Whether ``level`` fits these shapes (a level added after construction must not be larger)."""
        longest = tok.prefix_length(level) + step_limit(level.cells - 1, step_limit_factor)
        return level.height <= self.height and level.width <= self.width and longest <= self.max_len

    def space(self) -> gym.Space:
        if self.mode == "tokens":
            return sequence_space(self.max_len, tok.VOCAB_SIZE)
        if self.mode == "grid":
            hp, wp = self.pixels
            return gym.spaces.Box(0, 255, (3, hp * self.grid_scale, wp * self.grid_scale), dtype=np.uint8)
        if self.mode == "walls":
            hp, wp = self.pixels
            cell = gym.spaces.Box(0, np.array([self.height - 1, self.width - 1]), (2,), dtype=np.int64)
            return gym.spaces.Dict(
                walls=gym.spaces.Box(0, 255, (hp, wp), dtype=np.uint8), agent=cell, goal=cell
            )
        return gym.spaces.Box(0, 255, (2, self.view_size, self.view_size), dtype=np.uint8)
