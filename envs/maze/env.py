"""MazeEnv: one maze as a Gymnasium env, in plain NumPy/Python so a single env steps fast on a CPU.

Actions: Discrete(4) = up, right, down, left. Reward: +1 on reaching the goal, ``-step_cost`` every step,
``-wall_penalty`` for bumping into a wall (the agent stays). Terminated at the goal; truncated after
``ceil(step_limit_factor * optimal_length)`` steps. Mazes come from a per-level pool generated in batches
(regenerated when used up, so every episode gets a fresh maze) or from ``maze=`` (text or array).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from envs.common.checks import check_reset_arguments
from envs.common.task import LevelLike
from envs.maze import tokens as tok
from envs.maze.grid import MazeBatch, optimal_action_bits
from envs.maze.levels import MazeLevel
from envs.maze.render import ansi_text, rgb_frame, wall_image
from envs.maze.spaces import MazeObsSpec, step_limit
from envs.maze.task import MazeTask

BIT_MASKS = np.array([[(b >> a) & 1 for a in range(4)] for b in range(32)], dtype=bool)
RENDER_MODES = ("rgb_array", "ansi")


class _LevelPool:
    """A batch of mazes of one level as NumPy arrays, handed out one per episode."""

    def __init__(self, task: MazeTask, level_index: int, size: int, seed: int, tokens: bool):
        generator = torch.Generator().manual_seed(seed)
        mazes = task.generate(size, generator, level=level_index)
        self.height, self.width = mazes.height, mazes.width
        self.mazes = mazes
        self.passages = mazes.passages.numpy()
        self.optimal_bits = optimal_action_bits(mazes.passages, mazes.dist, mazes.height, mazes.width).numpy()
        self.start, self.goal = mazes.start.tolist(), mazes.goal.tolist()
        self.optimal = mazes.optimal_length.tolist()
        self.images = wall_image(mazes.passages, mazes.height, mazes.width).numpy()
        self.prefix = tok.encode_prefix(mazes).numpy() if tokens else None
        self.next = 0

    def exhausted(self) -> bool:
        return self.next >= len(self.start)


class MazeEnv(gym.Env):
    """Find the shortest way from the start to the goal of a maze, one move a step.

    ## Description

    A maze of ``height x width`` cells (a level of :class:`~envs.maze.task.MazeTask`: DFS mazes 5x5 to
    30x30 and ``30x30-hard`` by default; Prim, Wilson, recursive division, open grids or a fixed layout
    from ``maze=``) with one start and one goal. The agent walks cell to cell; the best policy follows
    the oracle's shortest path. The env runs in plain NumPy, so one env steps fast on a CPU; for many
    envs at once use :class:`~envs.maze.vector.MazeVectorEnv` (the same transitions on any device).

    ## Action Space

    ``Discrete(4)``: 0 up, 1 right, 2 down, 3 left. A move into a wall leaves the agent where it is.
    ``action_masks()`` gives the legal moves (for MaskablePPO).

    ## Observation Space

    Set by ``obs_mode`` (see :mod:`envs.maze.spaces`); shapes fit the largest level of the ladder:

    - ``"grid"``: ``Box(0, 255, (3, (2H+1)*s, (2W+1)*s), uint8)``, channels wall / agent / goal on the
      thin-wall pixel image (cell (r, c) at pixel (2r+1, 2c+1)), each pixel repeated ``s = grid_scale``
      times; a smaller maze sits top-left, the rest is wall.
    - ``"tokens"``: ``Dict(tokens=Box((T,), int64), length=Box((1,), int64))``: the maze token language
      (cells, start, goal, separator, then every move so far; see :mod:`envs.maze.tokens`), right-padded.
    - ``"egocentric"``: ``Box(0, 255, (2, k, k), uint8)``: walls and goal in a ``k = view_size`` pixel
      window centred on the agent.
    - ``"walls"``: ``Dict(walls=Box(0, 255, (2H+1, 2W+1), uint8), agent=Box((2,), int64),
      goal=Box((2,), int64))``: the grid's wall plane (built at reset) and the (row, col) cells of agent
      and goal; ``envs.maze.walls.grid_from_walls`` rebuilds ``grid``. Made for MazeVectorEnv, which
      writes the walls only when an episode starts; this env copies them out every step, as
      Gymnasium asks (observations never share memory).

    ## Rewards

    ``+1`` on reaching the goal, ``-step_cost`` (0.01) every step and a further ``-wall_penalty`` (0.05)
    for a move into a wall. An optimal episode of length L returns ``1 - 0.01 L``.

    ## Starting State

    A fresh maze of the current level (from a pool of ``pool_size`` mazes generated in one batch and
    regenerated when used up, so no maze repeats until then), the agent on its start cell. ``maze=``
    fixes the maze instead.

    ## Episode End

    Terminated when the agent reaches the goal. Truncated after ``ceil(step_limit_factor * L*)`` steps,
    L* the shortest path length. ``info`` holds ``success``, ``level`` (ladder index),
    ``optimal_length``, ``solved_optimally`` (reached the goal in L* steps), ``optimal_actions`` (the
    moves that keep a shortest path, (4,) bool) and ``steps``.

    ## Arguments

    - ``obs_mode``: ``"grid"`` (default), ``"tokens"``, ``"egocentric"`` or ``"walls"``.
    - ``level`` / ``levels``: the starting level (index, name, MazeLevel or field mapping) and the ladder
      (default :func:`~envs.maze.levels.default_levels`). Change level with ``env.unwrapped.set_level``.
    - ``maze``: a fixed maze as text (``#`` wall, space open, ``S`` start, ``G`` goal) or an array.
    - ``step_cost``, ``wall_penalty``, ``step_limit_factor``: reward and truncation, as above.
    - ``view_size`` (odd, >= 3), ``grid_scale`` (>= 1): egocentric window and grid pixel scale.
    - ``pool_size``: mazes generated per batch. ``horizons``: K of the task's multi-horizon targets.
    - ``render_mode``: ``"rgb_array"`` or ``"ansi"``.

    ```python
    >>> import envs, gymnasium as gym
    >>> env = gym.make("mindgym/Maze-v0", obs_mode="egocentric", level="8x8")
    >>> vec = gym.make_vec("mindgym/Maze-v0", num_envs=8, vectorization_mode="sync", obs_mode="grid")
    ```
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": list(RENDER_MODES), "render_fps": 8}

    def __init__(
        self,
        obs_mode: str = "grid",
        level: LevelLike = 0,
        levels: Sequence[MazeLevel] | None = None,
        render_mode: str | None = None,
        maze: str | Sequence[str] | np.ndarray | None = None,
        step_cost: float = 0.01,
        wall_penalty: float = 0.05,
        step_limit_factor: float = 3.0,
        view_size: int = 5,
        grid_scale: int = 1,
        pool_size: int = 256,
        horizons: int = 1,
    ):
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"Unknown render_mode {render_mode!r}; use None or one of {list(RENDER_MODES)}.")
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be a positive int, got {pool_size!r}.")
        self.task = MazeTask.for_env(levels, level, maze, horizons)
        self.obs_mode = obs_mode
        self.obs_spec = MazeObsSpec.for_levels(
            list(self.task.ladder), obs_mode, step_limit_factor, view_size, grid_scale
        )
        self.observation_space = self.obs_spec.space()
        self.action_space = gym.spaces.Discrete(4)
        self.render_mode = render_mode
        self.step_cost, self.wall_penalty = float(step_cost), float(wall_penalty)
        self.step_limit_factor = float(step_limit_factor)
        self.pool_size = pool_size
        self._pools: dict[int, _LevelPool] = {}
        self._pos: int | None = None

    # ----------------------------------------------------------------- levels
    @property
    def level(self) -> MazeLevel:
        return self.task.level

    def set_level(self, level: LevelLike) -> None:
        """Use ``level`` (index, name, MazeLevel or mapping) from the next reset on."""
        index = self.task.ladder.find(level)  # checked before a custom level joins the ladder
        candidate = self.task.ladder[index] if index is not None else self.task.ladder.coerce(level)
        if not self.obs_spec.fits(candidate, self.step_limit_factor):
            raise ValueError(
                f"Level {candidate.name!r} is larger than this env's observations allow; "
                "pass it in levels= when making the env."
            )
        self.task.level_index = self.task.ladder.index(candidate)

    # ----------------------------------------------------------------- Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        seed = check_reset_arguments("MazeEnv", seed, options)
        super().reset(seed=seed)
        if seed is not None:
            self._pools.clear()
        index = self.task.level_index
        pool = self._pools.get(index)
        if pool is None or pool.exhausted():
            seed_ = int(self.np_random.integers(2**62))
            pool = self._pools[index] = _LevelPool(
                self.task, index, self.pool_size, seed_, self.obs_mode == "tokens"
            )
        k, pool.next = pool.next, pool.next + 1
        self._maze = pool.mazes.select(torch.tensor([k]))
        self._level_index, self._w = index, pool.width
        self._passages = pool.passages[k].tolist()
        self._optimal_bits = pool.optimal_bits[k]
        self._image = pool.images[k]
        self._pos, self._goal = pool.start[k], pool.goal[k]
        self._optimal = pool.optimal[k]
        self._limit = step_limit(self._optimal, self.step_limit_factor)
        self._t = 0
        self._delta = (-self._w, 1, self._w, -1)
        wp = self.obs_spec.pixels[1]
        self._flat_pixel = [
            (2 * (c // self._w) + 1) * wp + 2 * (c % self._w) + 1 for c in range(pool.height * self._w)
        ]
        self._start_observation(pool.prefix[k] if pool.prefix is not None else None)
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if not (type(action) is int and 0 <= action < 4) and (
            not self.action_space.contains(action) or isinstance(action, bool | np.bool_)
        ):
            raise ValueError(
                f"Invalid action {action!r}: use an int in [0, 3] (0 up, 1 right, 2 down, 3 left)."
            )
        if self._pos is None:
            raise RuntimeError("Call reset() before step().")
        a = int(action)
        old = self._pos
        legal = (self._passages[old] >> a) & 1
        if legal:
            self._pos = old + self._delta[a]
        self._t += 1
        reached = self._pos == self._goal
        reward = 1.0 * reached - self.step_cost - (0.0 if legal else self.wall_penalty)
        truncated = not reached and self._t >= self._limit
        self._advance_observation(old, a)
        return self._observation(), reward, reached, truncated, self._info()

    def current_maze(self) -> MazeBatch:
        """The current episode's maze (a MazeBatch of one), e.g. for MazeTask.batch_from_mazes."""
        if self._pos is None:
            raise RuntimeError("Call reset() before current_maze().")
        return self._maze

    def action_masks(self) -> np.ndarray:
        """Legal moves at the agent's cell, (4,) bool (for MaskablePPO)."""
        return BIT_MASKS[self._passages[self._pos] & 15].copy()

    def render(self) -> np.ndarray | str | None:
        if self.render_mode is None or self._pos is None:
            return None
        agent, goal = self._pixel(self._pos), self._pixel(self._goal)
        if self.render_mode == "ansi":
            return ansi_text(self._image, agent, goal)
        return rgb_frame(self._image, agent, goal)

    # ----------------------------------------------------------------- observations and info
    def _pixel(self, cell: int) -> tuple[int, int]:
        r, c = divmod(cell, self._w)
        return 2 * r + 1, 2 * c + 1

    def _start_observation(self, prefix: np.ndarray | None) -> None:
        if self.obs_mode == "tokens":
            self._tokens = np.full(self.obs_spec.max_len, tok.PAD, dtype=np.int64)
            self._tokens[: len(prefix)] = prefix
            self._length = len(prefix)
            return
        hp, wp = self.obs_spec.pixels
        walls = np.full((hp, wp), 255, dtype=np.uint8)
        walls[: self._image.shape[0], : self._image.shape[1]] = self._image * np.uint8(255)
        if self.obs_mode == "walls":  # built once an episode; each step hands over a copy (users keep obs)
            self._walls_obs = {"walls": walls, "goal": np.array(divmod(self._goal, self._w), dtype=np.int64)}
        elif self.obs_mode == "grid":
            self._grid = np.zeros((3, hp, wp), dtype=np.uint8)
            self._grid[0] = walls
            self._agent_plane = self._grid[1].reshape(-1)
            self._agent_plane[self._flat_pixel[self._pos]] = 255
            self._grid[2][self._pixel(self._goal)] = 255
        else:
            b = self.obs_spec.view_size // 2
            self._ego_walls = np.pad(walls, b, constant_values=255)

    def _advance_observation(self, old: int, action: int) -> None:
        if self.obs_mode == "tokens":
            self._tokens[self._length] = tok.MOVE0 + action
            self._length += 1
        elif self.obs_mode == "grid":
            self._agent_plane[self._flat_pixel[old]] = 0
            self._agent_plane[self._flat_pixel[self._pos]] = 255

    def _observation(self) -> Any:
        if self.obs_mode == "tokens":
            return {"tokens": self._tokens.copy(), "length": np.array([self._length], dtype=np.int64)}
        if self.obs_mode == "walls":
            agent = np.array(divmod(self._pos, self._w), dtype=np.int64)
            return {key: value.copy() for key, value in self._walls_obs.items()} | {"agent": agent}
        if self.obs_mode == "grid":
            s = self.obs_spec.grid_scale
            return self._grid.copy() if s == 1 else self._grid.repeat(s, axis=1).repeat(s, axis=2)
        k = self.obs_spec.view_size
        (py, px), (gy, gx) = self._pixel(self._pos), self._pixel(self._goal)
        obs = np.zeros((2, k, k), dtype=np.uint8)
        obs[0] = self._ego_walls[py : py + k, px : px + k]
        dy, dx = gy - py + k // 2, gx - px + k // 2
        if 0 <= dy < k and 0 <= dx < k:
            obs[1, dy, dx] = 255
        return obs

    def _info(self) -> dict[str, Any]:
        success = self._pos == self._goal
        return {
            "success": success,
            "level": self._level_index,
            "optimal_length": self._optimal,
            "solved_optimally": success and self._t == self._optimal,
            "optimal_actions": BIT_MASKS[self._optimal_bits[self._pos]].copy(),
            "steps": self._t,
        }
