"""A device-resident pool of pre-generated mazes for every level of a ladder, padded to its largest size.

MazeVectorEnv draws each new episode's maze from here with one random index per sub-env, so a reset costs
a few gathers and no host round trip. Mazes of a level of ``h x w`` cells sit in an ``H x W`` grid (the
ladder's largest size) at the top-left: cell (r, c) has padded index ``r * W + c``. ``refill`` regenerates
the pool (on the device, with the env's generator) between rollouts, off the hot path. Every tensor here is
only ever written in place, so a step recorded as a CUDA graph keeps reading the current pool.
"""

from __future__ import annotations

import torch

from envs.maze import tokens as tok
from envs.maze.generators import generate_mazes
from envs.maze.grid import MazeBatch, optimal_action_bits
from envs.maze.render import wall_image
from envs.maze.spaces import MazeObsSpec
from envs.maze.task import MazeTask


class MazePool:
    """``size`` mazes per ladder level: passages, oracle bits, start/goal, limits and observation parts."""

    def __init__(
        self,
        task: MazeTask,
        spec: MazeObsSpec,
        size: int,
        step_limit_factor: float,
        device: torch.device,
        banks: int = 1,
    ):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"pool_size must be a positive int, got {size!r}.")
        if not isinstance(banks, int) or banks < 1:
            raise ValueError(f"pool_banks must be a positive int, got {banks!r}.")
        self.task, self.spec, self.size = task, spec, size
        self.num_levels = task.num_levels
        self.banks = banks
        self.step_limit_factor = step_limit_factor
        self.device = device
        rows, cells = banks * self.num_levels * size, spec.height * spec.width
        self.cells = cells
        self.passages = torch.zeros(rows, cells, dtype=torch.uint8, device=device)
        self.optimal_bits = torch.zeros(rows, cells, dtype=torch.uint8, device=device)
        self.start = torch.zeros(rows, dtype=torch.long, device=device)
        self.goal = torch.zeros(rows, dtype=torch.long, device=device)
        self.optimal = torch.zeros(rows, dtype=torch.long, device=device)
        self.limit = torch.zeros(rows, dtype=torch.long, device=device)
        self.border = spec.view_size // 2 if spec.mode == "egocentric" else 0
        hp, wp = spec.pixels
        self.image_shape = (hp + 2 * self.border, wp + 2 * self.border)
        # grid: (walls, agent (left empty), goal) planes; egocentric: walls with a border of wall;
        # walls: the wall plane alone (the env copies it into its observation when an episode starts).
        planes = {"grid": (3,), "egocentric": (), "walls": (), "tokens": None}[spec.mode]
        self.image = (
            torch.full((rows, *planes, *self.image_shape), 255, dtype=torch.uint8, device=device)
            if planes is not None
            else None
        )
        self.prefix_width = max(tok.prefix_length(level) for level in task.ladder)
        self.prefix = (
            torch.full((rows, self.prefix_width), tok.PAD, dtype=torch.int16, device=device)
            if spec.mode == "tokens"
            else None
        )
        self.prefix_len = torch.zeros(rows, dtype=torch.long, device=device)
        # start, goal, step limit and optimal length of each maze: one gather a reset
        self.table = torch.zeros(rows, 4, dtype=torch.long, device=device)

    def refill(self, generator: torch.Generator, bank: int = 0) -> None:
        """Regenerate every pooled level's mazes of ``bank`` with ``generator`` (on its device). The pool
        covers the ladder as it was when the env was made; a level a shared task gained later is not pooled.

        Rows are bank-major: level ``l`` of bank ``b`` holds rows ``(b * num_levels + l) * size`` onwards,
        so a second bank can be filled while episodes still run on the first (a staggered refresh)."""
        if not 0 <= bank < self.banks:
            raise ValueError(f"bank must lie in [0, {self.banks - 1}] (this pool's banks), got {bank!r}.")
        for index in range(self.num_levels):
            mazes = generate_mazes(self.task.ladder[index], self.size, generator, self.device)
            self.put(bank * self.num_levels + index, mazes)

    def put(self, level_index: int, mazes: MazeBatch) -> None:
        """Store ``size`` mazes (of that level's size) as the pool of ``level_index`` (of bank 0; level ``l``
        of bank ``b`` is ``b * num_levels + l``)."""
        if len(mazes) != self.size:
            raise ValueError(f"A pool level holds {self.size} mazes, got {len(mazes)}.")
        mazes = mazes.to(self.device)
        h, w, width = mazes.height, mazes.width, self.spec.width
        rows = slice(level_index * self.size, (level_index + 1) * self.size)
        cell = torch.arange(h * w, device=self.device)
        padded = (cell // w) * width + cell % w
        self.passages[rows] = 0
        self.passages[rows, padded] = mazes.passages
        self.optimal_bits[rows] = 0
        self.optimal_bits[rows, padded] = optimal_action_bits(mazes.passages, mazes.dist, h, w)
        self.start[rows] = (mazes.start // w) * width + mazes.start % w
        self.goal[rows] = (mazes.goal // w) * width + mazes.goal % w
        self.optimal[rows] = mazes.optimal_length
        factor = torch.tensor(self.step_limit_factor, dtype=torch.float64, device=self.device)
        self.limit[rows] = torch.ceil(factor * mazes.optimal_length.double()).long()
        if self.image is not None:
            b = self.border
            walls = wall_image(mazes.passages, h, w).to(torch.uint8) * 255
            if self.spec.mode == "grid":
                image = self.image[rows]
                image[:, 0] = 255
                image[:, 0, : 2 * h + 1, : 2 * w + 1] = walls
                image[:, 1:] = 0
                gy, gx = 2 * (self.goal[rows] // width) + 1, 2 * (self.goal[rows] % width) + 1
                image[torch.arange(self.size, device=self.device), 2, gy, gx] = 255
            else:
                self.image[rows] = 255
                self.image[rows, b : b + 2 * h + 1, b : b + 2 * w + 1] = walls
        if self.prefix is not None:
            prefix = tok.encode_prefix(mazes)
            self.prefix[rows] = tok.PAD
            self.prefix[rows, : prefix.shape[1]] = prefix.to(torch.int16)
            self.prefix_len[rows] = prefix.shape[1]
        self.table[rows] = torch.stack([self.start, self.goal, self.limit, self.optimal], dim=1)[rows]
