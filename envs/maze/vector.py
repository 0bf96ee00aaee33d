"""MazeVectorEnv: ``num_envs`` mazes stepped together with tensor ops on any torch device.

All state (maze id, agent cell, step count, episode constants, token buffer) lives on the device. A reset
draws each sub-env's maze from a device-resident :class:`~envs.maze.pool.MazePool` (a hashed random index
per sub-env at its level), so ``step`` never waits on the host. Transitions, rewards, observations and
infos equal MazeEnv's for the same maze and actions. Sub-envs may run different levels; observations are
padded to the ladder's largest size. ``compile=True`` fuses the step functions with ``torch.compile``, and
``cuda_graph=True`` replays the whole step as one CUDA graph (outputs are then overwritten by the next step;
see envs.common.graph). The two together are the fast path on a GPU.
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
from envs.maze import kernels
from envs.maze import tokens as tok
from envs.maze.grid import action_bits
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
        grid_scale: int = 1,
        pool_size: int = 512,
        horizons: int = 1,
        compile: bool = False,
        cuda_graph: bool = False,
        render_mode: str | None = None,
    ):
        if render_mode is not None:
            raise ValueError(
                f"MazeVectorEnv does not render (render_mode={render_mode!r}); render a MazeEnv instead."
            )
        task = MazeTask.for_env(levels, level, maze, horizons)
        spec = MazeObsSpec.for_levels(list(task.ladder), obs_mode, step_limit_factor, view_size, grid_scale)
        super().__init__(
            task, num_envs, spec.space(), gym.spaces.Discrete(4), device, autoreset_mode, numpy, seed
        )
        self.obs_mode, self.obs_spec = obs_mode, spec
        self.step_limit_factor = float(step_limit_factor)
        self.step_cost, self.wall_penalty = float(step_cost), float(wall_penalty)
        self.pool = MazePool(task, spec, pool_size, self.step_limit_factor, self.device)
        self.pool.refill(self.generator)
        dev, n = self.device, num_envs
        self._delta = torch.tensor([-spec.width, 1, spec.width, -1], device=dev)
        self._seed = torch.randint(2**31, (), generator=self.generator, device=dev)
        self._counter = torch.zeros((), dtype=torch.long, device=dev)
        self._salt = kernels.env_salt(n, dev)
        self._maze = torch.zeros(n, dtype=torch.long, device=dev)
        self._pos = torch.zeros(n, dtype=torch.long, device=dev)
        self._t = torch.zeros(n, dtype=torch.long, device=dev)
        self._episode = torch.ones(n, 4, dtype=torch.long, device=dev)  # start, goal, limit, optimal
        if obs_mode == "tokens":  # the moves so far; the prefix comes from the pool
            self._moves = torch.zeros(n, spec.max_len, dtype=torch.uint8, device=dev)
        if compile:  # fuse the whole step (transition, autoreset, info, observation) into a few kernels
            config = torch._dynamo.config  # each env instance compiles its own step: allow many
            config.recompile_limit = max(getattr(config, "recompile_limit", 8), 64)
            self._step_tensors = torch.compile(self._step_tensors, dynamic=False)
        if cuda_graph:  # and launch those kernels as one graph: the host no longer sets the pace
            self.use_cuda_graph()

    # ----------------------------------------------------------------- levels and pool
    def set_level(self, level: LevelLike | torch.Tensor, env_ids: Any = None) -> None:
        """As TorchVectorEnv.set_level; levels must be in the ladder the env was made with."""
        if not isinstance(level, torch.Tensor) and self.task.ladder.index(level) >= self.pool.num_levels:
            raise ValueError(
                f"Level {level!r} was not in this env's ladder at construction, so it has no maze pool; "
                "pass it in levels= when making the env."
            )
        super().set_level(level, env_ids)

    def refill_pool(self) -> tuple[Any, dict[str, Any]]:
        """Regenerate every level's maze pool for fresh mazes (between rollouts, off the hot path).

        Running episodes would lose their mazes, so every sub-env starts a new episode: this returns the
        observations and infos of ``reset()``.
        """
        self.pool.refill(self.generator)
        return self.reset()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """As TorchVectorEnv.reset; a seed also regenerates the pool, so the mazes follow from it."""
        if seed is None:
            return super().reset(options=options)
        self.generator.manual_seed(int(seed))
        self.pool.refill(self.generator)
        self._seed = torch.randint(2**31, (), generator=self.generator, device=self.device)
        self._counter.zero_()
        advanced = self.generator.get_state()
        result = super().reset(seed=seed, options=options)  # reseeds the generator with ``seed`` ...
        self.generator.set_state(advanced)  # ... so step past the draws above: a later refill is new
        return result

    def action_masks(self) -> Any:
        """Legal moves of every sub-env, (num_envs, 4) bool (for MaskablePPO)."""
        return self._output(action_bits(self.pool.passages.view(-1)[self._cell_base() + self._pos]))

    # ----------------------------------------------------------------- TorchVectorEnv hooks
    def _cell_base(self) -> torch.Tensor:
        return self._maze * self.pool.cells

    def _reset_envs(self, mask: torch.Tensor) -> None:
        draw = kernels.hash_draw(self._seed, self._counter, self._salt, self.pool.size)
        self._counter.add_(1)
        self._maze, self._pos, self._t, self._episode = kernels.start_episodes(
            mask,
            self.level_ids,
            draw,
            self._maze,
            self._pos,
            self._t,
            self._episode,
            self.pool.table,
            self.pool.size,
        )

    def _step_envs(
        self, actions: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.obs_mode == "tokens":
            kernels.write_moves(self._moves, self._t, actions)
        self._pos, self._t, reward, terminated, truncated = kernels.transition(
            self.pool.passages.view(-1),
            self._cell_base(),
            self._pos,
            self._episode[:, 1],
            self._t,
            self._episode[:, 2],
            actions,
            active,
            self._delta,
            self.step_cost,
            self.wall_penalty,
        )
        return reward, terminated, truncated

    def _observe(self) -> Observation:
        spec = self.obs_spec
        if self.obs_mode == "tokens":
            tokens, length = kernels.token_observation(
                self.pool.prefix,
                self.pool.prefix_len,
                self._maze,
                self._moves,
                self._t,
                spec.max_len,
                tok.MOVE0,
                tok.PAD,
            )
            return {"tokens": tokens, "length": length}
        if self.obs_mode == "grid":
            return kernels.grid_observation(
                self.pool.image, self._maze, self._pos, spec.width, spec.grid_scale
            )
        return kernels.egocentric_observation(
            self.pool.image, self._maze, self._pos, self._episode[:, 1], spec.width, spec.view_size
        )

    def _info(self) -> dict[str, torch.Tensor]:
        optimal = self._episode[:, 3]
        success, solved, best = kernels.step_info(
            self.pool.optimal_bits.view(-1),
            self._cell_base(),
            self._pos,
            self._episode[:, 1],
            self._t,
            optimal,
        )
        return {
            "success": success,
            "level": self.level_ids,
            "optimal_length": optimal,
            "solved_optimally": solved,
            "optimal_actions": best,
            "steps": self._t,
        }
