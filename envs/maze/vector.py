"""MazeVectorEnv: ``num_envs`` mazes stepped together with tensor ops on any torch device.

All state (maze id, agent cell, goal, step count, token buffer) lives on the device. A reset draws each
sub-env's maze from a device-resident :class:`~envs.maze.pool.MazePool` (one random index per sub-env at
its level), so ``step`` never waits on the host. Transitions, rewards, observations and infos equal
MazeEnv's for the same maze and actions. Sub-envs may run different levels; observations are padded to
the ladder's largest size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from envs.common.task import LevelLike
from envs.common.vector import Observation, TorchVectorEnv
from envs.maze import tokens as tok
from envs.maze.grid import action_bits
from envs.maze.layout import layout_level
from envs.maze.levels import MazeLevel
from envs.maze.pool import MazePool
from envs.maze.spaces import MazeObsSpec
from envs.maze.task import MazeTask


class MazeVectorEnv(TorchVectorEnv):
    """The native batched maze env; see MazeEnv for actions, rewards and observation modes."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "auto",
        obs_mode: str = "tokens",
        level: LevelLike = 0,
        levels: Sequence[MazeLevel] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        numpy: bool = False,
        seed: int | None = None,
        maze: str | Sequence[str] | np.ndarray | None = None,
        step_cost: float = 0.01,
        wall_penalty: float = 0.05,
        step_limit_factor: float = 3.0,
        view_size: int = 5,
        pool_size: int = 512,
        horizons: int = 1,
        render_mode: str | None = None,
    ):
        if render_mode is not None:
            raise ValueError(
                f"MazeVectorEnv does not render (render_mode={render_mode!r}); render a MazeEnv instead."
            )
        task = MazeTask(levels, horizons=horizons)
        task.set_level(layout_level(maze) if maze is not None else level)
        spec = MazeObsSpec.for_levels(list(task.ladder), obs_mode, step_limit_factor, view_size)
        super().__init__(
            task, num_envs, spec.space(), gym.spaces.Discrete(4), device, autoreset_mode, numpy, seed
        )
        self.obs_mode, self.obs_spec = obs_mode, spec
        self.step_limit_factor = float(step_limit_factor)
        self.step_cost, self.wall_penalty = float(step_cost), float(wall_penalty)
        self.pool = MazePool(task, spec, pool_size, self.step_limit_factor, self.device)
        self.pool.refill(self.generator)
        dev, n, width = self.device, num_envs, spec.width
        self._delta = torch.tensor([-width, 1, width, -1], device=dev)
        self._maze = torch.zeros(n, dtype=torch.long, device=dev)
        self._pos = torch.zeros(n, dtype=torch.long, device=dev)
        self._goal = torch.zeros(n, dtype=torch.long, device=dev)
        self._t = torch.zeros(n, dtype=torch.long, device=dev)
        self._limit = torch.ones(n, dtype=torch.long, device=dev)
        self._optimal = torch.ones(n, dtype=torch.long, device=dev)
        if obs_mode == "tokens":
            self._tokens = torch.full((n, spec.max_len), tok.PAD, dtype=torch.long, device=dev)
            self._length = torch.ones(n, dtype=torch.long, device=dev)
        hp, wp = self.pool.image_shape
        self._pixels = torch.arange(hp * wp, device=dev)
        b = self.pool.border
        k = spec.view_size
        dy, dx = torch.meshgrid(torch.arange(-b, b + 1), torch.arange(-b, b + 1), indexing="ij")
        self._window = (dy * wp + dx).reshape(-1).to(dev)
        self._window_cells = torch.arange(k * k, device=dev)

    # ----------------------------------------------------------------- levels and pool
    def set_level(self, level: LevelLike | torch.Tensor, env_ids: Any = None) -> None:
        """As TorchVectorEnv.set_level; levels must be in the ladder the env was made with."""
        if not isinstance(level, torch.Tensor) and self.task.ladder.index(level) >= self.pool.num_levels:
            raise ValueError(
                f"Level {level!r} was not in this env's ladder at construction, so it has no maze pool; "
                "pass it in levels= when making the env."
            )
        super().set_level(level, env_ids)

    def refill_pool(self) -> None:
        """Regenerate every level's maze pool (call between rollouts for fresh mazes)."""
        self.pool.refill(self.generator)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """As TorchVectorEnv.reset; a seed also regenerates the pool, so the mazes follow from it."""
        if seed is not None:
            self.generator.manual_seed(int(seed))
            self.pool.refill(self.generator)
        return super().reset(seed=seed, options=options)

    def action_masks(self) -> Any:
        """Legal moves of every sub-env, (num_envs, 4) bool (for MaskablePPO)."""
        return self._output(action_bits(self._cell_passages()))

    # ----------------------------------------------------------------- TorchVectorEnv hooks
    def _cell_passages(self) -> torch.Tensor:
        return self.pool.passages.view(-1)[self._maze * self.pool.cells + self._pos]

    def _reset_envs(self, mask: torch.Tensor) -> None:
        draw = torch.randint(self.pool.size, (self.num_envs,), generator=self.generator, device=self.device)
        self._maze = torch.where(mask, self.level_ids * self.pool.size + draw, self._maze)
        pool = self.pool
        self._pos = torch.where(mask, pool.start[self._maze], self._pos)
        self._goal = torch.where(mask, pool.goal[self._maze], self._goal)
        self._limit = torch.where(mask, pool.limit[self._maze], self._limit)
        self._optimal = torch.where(mask, pool.optimal[self._maze], self._optimal)
        self._t = self._t.masked_fill(mask, 0)
        if self.obs_mode == "tokens":
            width = pool.prefix_width
            rows = mask[:, None]
            self._tokens[:, :width] = torch.where(
                rows, pool.prefix[self._maze].long(), self._tokens[:, :width]
            )
            self._tokens[:, width:].masked_fill_(rows, tok.PAD)
            self._length = torch.where(mask, pool.prefix_len[self._maze], self._length)

    def _step_envs(
        self, actions: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        legal = ((self._cell_passages().long() >> actions) & 1).bool()
        self._pos = torch.where(legal & active, self._pos + self._delta[actions], self._pos)
        self._t = self._t + active.long()
        reached = self._pos == self._goal
        terminated = reached & active
        truncated = active & ~reached & (self._t >= self._limit)
        reward = (
            terminated.float()
            - self.step_cost * active.float()
            - self.wall_penalty * (active & ~legal).float()
        )
        if self.obs_mode == "tokens":
            at = self._length.clamp(max=self.obs_spec.max_len - 1)[:, None]
            move = torch.where(active[:, None], tok.MOVE0 + actions[:, None], self._tokens.gather(1, at))
            self._tokens.scatter_(1, at, move)
            self._length = self._length + active.long()
        return reward, terminated, truncated

    def _pixel(self, cell: torch.Tensor) -> torch.Tensor:
        """Flat index of a padded cell's pixel in the pool image (with its border)."""
        width, b = self.obs_spec.width, self.pool.border
        return (2 * (cell // width) + 1 + b) * self.pool.image_shape[1] + 2 * (cell % width) + 1 + b

    def _observe(self) -> Observation:
        if self.obs_mode == "tokens":
            return {"tokens": self._tokens.clone(), "length": self._length[:, None].clone()}
        agent, goal = self._pixel(self._pos), self._pixel(self._goal)
        if self.obs_mode == "grid":
            hp, wp = self.pool.image_shape
            walls = self.pool.image[self._maze]
            marks = torch.stack([self._pixels == agent[:, None], self._pixels == goal[:, None]], dim=1)
            marks = marks.view(self.num_envs, 2, hp, wp).to(torch.uint8) * 255
            return torch.cat([walls[:, None], marks], dim=1)
        size = self.pool.image_shape[0] * self.pool.image_shape[1]
        walls = self.pool.image.view(-1)[(self._maze * size + agent)[:, None] + self._window]
        k, b, wp = self.obs_spec.view_size, self.pool.border, self.pool.image_shape[1]
        dy, dx = goal // wp - agent // wp + b, goal % wp - agent % wp + b
        inside = (dy >= 0) & (dy < k) & (dx >= 0) & (dx < k)
        goal_at = torch.where(inside, dy * k + dx, -1)
        goal_mark = (self._window_cells == goal_at[:, None]).to(torch.uint8) * 255
        return torch.stack([walls, goal_mark], dim=1).view(self.num_envs, 2, k, k)

    def _info(self) -> dict[str, torch.Tensor]:
        success = self._pos == self._goal
        best = self.pool.optimal_bits.view(-1)[self._maze * self.pool.cells + self._pos]
        return {
            "success": success,
            "level": self.level_ids,
            "optimal_length": self._optimal,
            "solved_optimally": success & (self._t == self._optimal),
            "optimal_actions": action_bits(best),
            "steps": self._t,
        }
