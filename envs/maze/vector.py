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
from envs.common.vector import Observation, TorchVectorEnv, check_task_arguments
from envs.maze import kernels
from envs.maze import tokens as tok
from envs.maze.grid import action_bits
from envs.maze.levels import MazeLevel
from envs.maze.pool import MazePool
from envs.maze.spaces import MazeObsSpec
from envs.maze.task import MazeTask
from envs.maze.walls import write_walls
from foundation import check_seed, restore_generator


class MazeVectorEnv(TorchVectorEnv):
    """``num_envs`` mazes stepped together with tensor ops on any torch device (MindGym's native batch).

    ## Description

    The maze task of :class:`~envs.maze.env.MazeEnv` (find the shortest way to the goal), batched: all
    state lives in tensors on ``device`` and ``step`` never waits on the host. Transitions, rewards,
    observations and infos equal MazeEnv's for the same maze and actions. Sub-envs may play different
    levels of one :class:`~envs.maze.task.MazeTask` (``set_level`` with a LongTensor of ladder indices,
    e.g. from a curriculum); observations are padded to the ladder's largest maze.

    ## Action Space

    ``MultiDiscrete([4] * num_envs)`` (``single_action_space = Discrete(4)``): 0 up, 1 right, 2 down,
    3 left; an integer tensor or array of shape (num_envs,). ``action_masks()`` gives (num_envs, 4) legal
    moves.

    ## Observation Space

    ``obs_mode`` as in MazeEnv, batched along a first axis of ``num_envs``: ``"tokens"`` (the default
    here: ``{"tokens": (N, T) int64, "length": (N, 1) int64}``), ``"grid"`` ((N, 3, (2H+1)s, (2W+1)s)
    uint8), ``"egocentric"`` ((N, 2, k, k) uint8) or ``"walls"`` (``{"walls": (N, 2H+1, 2W+1) uint8,
    "agent": (N, 2), "goal": (N, 2)}`` int64 cells; the walls are written only when a sub-env starts an
    episode, into a buffer that the env keeps and returns: copy it to keep it past a later reset, as a
    rollout buffer does; same-step autoreset returns copies). Tensors on ``device``, or NumPy with
    ``numpy=True``.

    ## Rewards

    ``+1`` on reaching the goal, ``-step_cost`` every step, a further ``-wall_penalty`` for a move into a
    wall; 0 on the step a NEXT_STEP autoreset spends restarting a finished sub-env.

    ## Starting State

    A reset (explicit or automatic) gives each sub-env a maze of its level drawn by a hashed random index
    from a device-resident pool of ``pool_size`` mazes per level, the agent on the start cell. Mazes of
    a pool repeat across episodes until ``refill_pool()`` or ``reset(seed=...)`` regenerates it (both
    restart every sub-env), or ``refresh_pool(seed)`` (with ``pool_banks=2``) fills a second bank that each
    sub-env draws from at its own next reset, so no episode is cut short.

    ## Episode End

    Terminated at the goal; truncated after ``ceil(step_limit_factor * L*)`` steps. Autoreset follows
    ``autoreset_mode`` (``metadata["autoreset_mode"]``, NEXT_STEP by default). ``info`` holds
    (num_envs,) tensors ``success``, ``level``, ``optimal_length``, ``solved_optimally``, ``steps`` and
    ``optimal_actions`` (num_envs, 4).

    ## Arguments

    - ``num_envs``: sub-envs in the batch.
    - ``task``: a MazeTask to play, shared and never copied, so a sampler on the same task and this env
      see one ladder; the env's maze pools cover the levels the ladder holds when the env is made.
      Excludes ``levels``, ``maze`` and ``horizons``, which build a task.
    - ``device`` (``"auto"``: CUDA when present), ``obs_mode``, ``autoreset_mode``, ``numpy``, ``seed``.
    - ``level``: the level every sub-env starts at (default: the task's current level; the first when
      the env builds its task). ``levels``: the ladder (default: the documented one).
    - ``maze``: one fixed maze (text or array) as the level. ``horizons``: K of the task's targets.
    - ``step_cost``, ``wall_penalty``, ``step_limit_factor``, ``view_size``, ``grid_scale``: as MazeEnv.
    - ``pool_size``: mazes held per level. ``pool_banks``: 2 allows ``refresh_pool`` (twice the memory).
      ``compile``: fuse the step with ``torch.compile``;
      ``cuda_graph``: replay it as one CUDA graph (outputs are overwritten by the next step).

    ```python
    >>> import envs, gymnasium as gym
    >>> vec = gym.make_vec("mindgym/Maze-v0", num_envs=1024, vectorization_mode="vector_entry_point",
    ...                    device="cuda", obs_mode="grid", level="8x8")
    >>> task = MazeTask(level="8x8")                        # the supervised sampler's task ...
    >>> vec = MazeVectorEnv(64, task=task, device="cpu")   # ... and the env play the same object
    ```
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        *,
        task: MazeTask | None = None,
        device: str | torch.device = "auto",
        obs_mode: str = "tokens",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        numpy: bool = False,
        seed: int | None = None,
        level: LevelLike | None = None,
        levels: Sequence[MazeLevel] | None = None,
        maze: str | Sequence[str] | np.ndarray | None = None,
        horizons: int | None = None,
        step_cost: float = 0.01,
        wall_penalty: float = 0.05,
        step_limit_factor: float = 3.0,
        view_size: int = 5,
        grid_scale: int = 1,
        pool_size: int = 512,
        pool_banks: int = 1,
        compile: bool = False,
        cuda_graph: bool = False,
        render_mode: str | None = None,
    ):
        if render_mode is not None:
            raise ValueError(
                f"MazeVectorEnv does not render (render_mode={render_mode!r}); render a MazeEnv instead."
            )
        check_task_arguments("MazeVectorEnv", task, MazeTask, levels=levels, maze=maze, horizons=horizons)
        start = None if task is None or level is None else task.ladder.index(level)
        if task is None:
            horizons = 1 if horizons is None else horizons
            task = MazeTask.for_env(levels, 0 if level is None else level, maze, horizons)
        spec = MazeObsSpec.for_levels(list(task.ladder), obs_mode, step_limit_factor, view_size, grid_scale)
        super().__init__(
            task,
            num_envs,
            spec.space(),
            gym.spaces.Discrete(4),
            device,
            autoreset_mode,
            numpy,
            seed,
            level=start,
        )
        self.obs_mode, self.obs_spec = obs_mode, spec
        self.step_limit_factor = float(step_limit_factor)
        self.step_cost, self.wall_penalty = float(step_cost), float(wall_penalty)
        self.pool = MazePool(task, spec, pool_size, self.step_limit_factor, self.device, pool_banks)
        self.pool.refill(self.generator)
        dev, n = self.device, num_envs
        # the bank new episodes draw from (a device scalar: read inside the step without a sync) and the
        # seed each bank's mazes came from (None: not reproducible), which is all a saved state needs
        self.pool_bank = torch.zeros((), dtype=torch.long, device=dev)
        self._bank_seeds: list[int | None] = [seed] + [None] * (pool_banks - 1)
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
        if obs_mode == "walls":  # each sub-env's wall plane, rewritten in place only when it resets
            self._walls = torch.full((n, *spec.pixels), 255, dtype=torch.uint8, device=dev)
        if compile:  # fuse the whole step (transition, autoreset, info, observation) into a few kernels
            config = torch._dynamo.config  # each env instance compiles its own step: allow many
            config.recompile_limit = max(getattr(config, "recompile_limit", 8), 64)
            self._step_tensors = torch.compile(self._step_tensors, dynamic=False)
        if cuda_graph:  # and launch those kernels as one graph: the host no longer sets the pace
            self.use_cuda_graph()

    # ----------------------------------------------------------------- levels and pool
    def set_level(self, level: LevelLike | torch.Tensor, env_ids: Any = None) -> None:
        """As TorchVectorEnv.set_level; levels must be in the ladder the env was made with (the ladder of a
        shared task is left as it is when one is not)."""
        if not isinstance(level, torch.Tensor | int | str):
            level = self.task.ladder.coerce(level)
            pooled = [self.task.ladder[i] for i in range(self.pool.num_levels)]
            if level not in pooled:
                raise ValueError(
                    f"Level {level.name!r} was not in this env's ladder at construction, so it has no maze "
                    "pool; pass it in levels= (or in the task's ladder) when making the env."
                )
        elif not isinstance(level, torch.Tensor) and self.task.ladder.index(level) >= self.pool.num_levels:
            raise ValueError(
                f"Level {level!r} joined the task's ladder after this env was made, so it has no maze pool; "
                "make the env after adding the level."
            )
        super().set_level(level, env_ids)

    def refill_pool(self) -> tuple[Any, dict[str, Any]]:
        """Regenerate every level's maze pool for fresh mazes (between rollouts, off the hot path).

        Running episodes would lose their mazes, so every sub-env starts a new episode: this returns the
        observations and infos of ``reset()``.
        """
        self.pool.refill(self.generator, self._active_bank())
        self._bank_seeds[self._active_bank()] = None
        return self.reset()

    def refresh_pool(self, seed: int) -> tuple[Any, torch.Tensor]:
        """Fresh mazes without restarting anyone: fill the other bank of a ``pool_banks=2`` pool from
        ``seed`` and make it the one new episodes draw from, so each sub-env takes a new maze at its own
        next reset while running episodes finish on the mazes they started. A sub-env still on the bank
        being refilled (its episode began before the previous refresh) is restarted on the new bank.

        Returns (the observation of every sub-env, a (num_envs,) bool tensor: True where a sub-env was
        restarted). The mazes follow from ``seed`` alone, as with ``reset(seed=...)``.
        """
        if self.pool.banks != 2:
            raise ValueError(
                f"refresh_pool needs a pool of two banks (MazeVectorEnv(..., pool_banks=2)); this env has "
                f"{self.pool.banks}. Use reset(seed=...) to regenerate the pool and restart every sub-env."
            )
        seed = check_seed(seed)
        new = 1 - self._active_bank()
        stale = self._maze // (self.pool.num_levels * self.pool.size) == new  # their mazes are overwritten
        self.generator.manual_seed(seed)
        self.pool.refill(self.generator, new)
        self._bank_seeds[new] = seed
        self.pool_bank.fill_(new)
        self._seed = torch.randint(2**31, (), generator=self.generator, device=self.device)
        self._counter.zero_()
        self._reset(stale)
        self._needs_reset = self._needs_reset & ~stale
        return self._output(self._observe()), stale

    def share_pool(self, source: MazeVectorEnv) -> None:
        """Draw this env's episodes from ``source``'s maze pool and bank (read-only: a seedless reset never
        refills it), e.g. to walk a training env's current mazes."""
        self.pool, self.pool_bank = source.pool, source.pool_bank

    def current_observation(self) -> Any:
        """Every sub-env's observation now (what the last ``step`` or ``reset`` returned)."""
        return self._output(self._observe())

    def state_dict(self) -> dict[str, Any]:
        """Every sub-env's episode, the level each plays next, the draw counters and the seeds of the pool's
        banks (the mazes are regenerated from them, not saved): what :meth:`load_state_dict` needs to
        continue exactly, mid-episode. Needs the mazes of every bank in use to come from a seed (``seed=``
        when made, ``reset(seed=...)``, ``refresh_pool(seed)``); a bank no episode draws from is not kept."""
        rows = self.pool.num_levels * self.pool.size
        in_use = set((self._maze // rows).unique().tolist()) | {self._active_bank()}
        if any(self._bank_seeds[bank] is None for bank in in_use):
            raise ValueError(
                "state_dict needs the pool banks in use generated from a seed (make the env with seed=..., "
                "then reset(seed=...) or refresh_pool(seed)); a seedless refill_pool() cannot be regenerated."
            )
        seeds = [seed if bank in in_use else None for bank, seed in enumerate(self._bank_seeds)]
        tensors = {
            "level_ids": self.level_ids,
            "next_level_ids": self.next_level_ids,
            "needs_reset": self._needs_reset,
            "maze": self._maze,
            "pos": self._pos,
            "t": self._t,
            "episode": self._episode,
            "seed": self._seed,
            "counter": self._counter,
            "pool_bank": self.pool_bank,
        }
        if self.obs_mode == "tokens":
            tensors["moves"] = self._moves
        state: dict[str, Any] = {name: value.detach().cpu().clone() for name, value in tensors.items()}
        pool_shape = [self.pool.num_levels, self.pool.size]
        generator = self.generator.get_state()
        return state | {"bank_seeds": seeds, "pool_shape": pool_shape, "generator": generator}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`: regenerate each bank's mazes from its seed and restore every
        sub-env's episode (same ladder, pool size, banks and number of sub-envs)."""
        seeds = list(state["bank_seeds"])
        if len(seeds) != self.pool.banks or state["maze"].shape != self._maze.shape:
            raise ValueError(
                f"This state is of an env with {len(seeds)} pool bank(s) and {state['maze'].shape[0]} "
                f"sub-envs; this env has {self.pool.banks} and {self.num_envs}. Make it as the saved one."
            )
        levels, size = state["pool_shape"]
        if (levels, size) != (self.pool.num_levels, self.pool.size):
            raise ValueError(
                f"This state is of an env with {levels} level(s) and pools of {size} mazes a level; this "
                f"env has {self.pool.num_levels} and {self.pool.size}. Make it with the saved levels and "
                "pool_size (env.levels and env.pool_size in runners.ppo)."
            )
        for bank, seed in enumerate(seeds):
            if seed is not None:  # None: no episode draws from that bank until a refresh refills it
                self.generator.manual_seed(int(seed))
                self.pool.refill(self.generator, bank)
        self._bank_seeds = seeds
        restore_generator(self.generator, state["generator"], "maze env")
        # copies: steps update some of these in place, which must not reach the caller's state
        tensors = {name: value for name, value in state.items() if torch.is_tensor(value)}
        own = {name: value.to(self.device, copy=True) for name, value in tensors.items()}
        self.level_ids, self.next_level_ids = own["level_ids"], own["next_level_ids"]
        self._needs_reset, self._maze, self._pos = own["needs_reset"], own["maze"], own["pos"]
        self._t, self._episode = own["t"], own["episode"]
        self._seed, self._counter = own["seed"], own["counter"]
        self.pool_bank.copy_(state["pool_bank"])
        if self.obs_mode == "tokens":
            self._moves = own["moves"]
        if self.obs_mode == "walls":
            write_walls(self._walls, self.pool.image, self._maze, self._all_envs)

    def _active_bank(self) -> int:
        """The bank new episodes draw from, on the host (off the hot path only)."""
        return int(self.pool_bank)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """As TorchVectorEnv.reset; a seed also regenerates the pool, so the mazes follow from it."""
        seed, options = self._check_reset_arguments(seed, options)  # before the pool changes
        if "reset_mask" in options:
            self._as_mask(options["reset_mask"])
        if seed is None:
            return super().reset(options=options)
        self.generator.manual_seed(seed)
        self.pool.refill(self.generator, self._active_bank())
        self._bank_seeds[self._active_bank()] = seed
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
            self.level_ids + self.pool_bank * self.pool.num_levels,  # the bank's block of levels
            draw,
            self._maze,
            self._pos,
            self._t,
            self._episode,
            self.pool.table,
            self.pool.size,
        )
        if self.obs_mode == "walls":
            write_walls(self._walls, self.pool.image, self._maze, mask)

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
        if self.obs_mode == "walls":
            w = spec.width
            agent = torch.stack([self._pos // w, self._pos % w], dim=1)
            goal = torch.stack([self._episode[:, 1] // w, self._episode[:, 1] % w], dim=1)
            # Same-step autoreset returns the finished episode's walls (final_obs) and the next one's
            # (obs) from one step, so each gets its own copy; otherwise the buffer itself is the output.
            same_step = self.autoreset_mode is AutoresetMode.SAME_STEP
            return {"walls": self._walls.clone() if same_step else self._walls, "agent": agent, "goal": goal}
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
