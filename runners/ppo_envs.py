"""The envs of ``runners.ppo`` and its greedy evaluation on fresh episodes.

Training runs MindGym's native vector envs with same-step autoreset (the observation after a finished
episode is already the next episode's first, as in CleanRL's loop), optionally under the curriculum
wrapper. Evaluation builds its own envs from seeds disjoint from training (``derive_seed(seed, "eval")``
against ``derive_seed(seed, "train/<update>")``) and walks each sub-env through one episode greedily with
the project's one rollout function (:func:`agents.rollout.rollout`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode
from omegaconf import DictConfig, OmegaConf

from agents.ppo_policies import ActorCritic
from agents.rollout import rollout
from curricula import CurriculumVectorWrapper
from envs.common.vector import TorchVectorEnv
from envs.maze import MazeTask
from envs.maze.vector import MazeVectorEnv
from envs.recall.task import RecallTask
from envs.recall.vector import RecallVectorEnv
from foundation import derive_seed
from runners.config import build_curriculum_schedule

EVAL_POOL_FACTOR = 16  # eval pools hold 16 mazes per episode: ~97% of the walks are on distinct mazes


def make_task(cfg: DictConfig) -> MazeTask | RecallTask:
    """The task (ladder and start level) the config describes."""
    spec = OmegaConf.to_container(cfg.env.levels) if cfg.env.levels is not None else None
    start = int(cfg.env.start_level)
    if cfg.env.family == "maze":
        return MazeTask.from_spec(spec, level=start)
    return RecallTask.from_spec(str(cfg.env.family), spec, level=start)


def make_vector_env(
    cfg: DictConfig,
    task: MazeTask | RecallTask,
    num_envs: int,
    seed: int,
    device: torch.device,
    pool_size: int,
    autoreset: AutoresetMode = AutoresetMode.SAME_STEP,
    pool_banks: int = 1,
) -> TorchVectorEnv:
    """A native vector env of ``task`` (shared, so a curriculum on it moves this env's levels); a maze
    env's pool holds ``pool_banks`` banks (2 for a staggered refresh)."""
    if cfg.env.family == "maze":
        return MazeVectorEnv(
            num_envs,
            task=task,
            device=device,
            obs_mode=str(cfg.env.obs_mode),
            autoreset_mode=autoreset,
            seed=seed,
            pool_size=pool_size,
            pool_banks=pool_banks,
            step_limit_factor=float(cfg.env.step_limit_factor),
        )
    return RecallVectorEnv(
        num_envs, task=task, device=device, obs_mode="stream", autoreset_mode=autoreset, seed=seed
    )


def make_training_env(cfg: DictConfig, device: torch.device) -> tuple[gym.vector.VectorEnv, TorchVectorEnv]:
    """(the env training steps, its native base): the base wrapped in the curriculum unless
    ``curriculum.name=none``."""
    task = make_task(cfg)
    seed = derive_seed(int(cfg.seed), "train/env") % 2**31
    banks = 2 if staggered_refresh(cfg) else 1
    base = make_vector_env(
        cfg, task, int(cfg.env.num_envs), seed, device, int(cfg.env.pool_size), pool_banks=banks
    )
    if cfg.curriculum.name == "none":
        return base, base
    schedule = build_curriculum_schedule(cfg.curriculum, task.num_levels)
    curriculum_seed = derive_seed(int(cfg.seed), "curriculum") % 2**31
    return CurriculumVectorWrapper(base, schedule, seed=curriculum_seed), base


def staggered_refresh(cfg: DictConfig) -> bool:
    """Whether new mazes reach each sub-env at its own next reset (``env.refresh=staggered``) rather than
    by restarting every sub-env at once (``all``)."""
    return str(cfg.env.refresh) == "staggered"


def refresh_training_env(
    envs: gym.vector.VectorEnv, base: TorchVectorEnv, cfg: DictConfig, update: int
) -> tuple[Any, torch.Tensor | None]:
    """New mazes for training at ``update``, from a seed of (run seed, update), so the pool is the same after
    a resume. Returns (observations, which sub-envs start an episode: a bool mask, or None for all).

    ``env.refresh=all``: reset every sub-env (the curriculum draws every level anew). ``staggered``: fill
    the pool's other bank, which each sub-env draws from at its own next reset; only a sub-env whose
    episode began before the previous refresh is restarted (its maze is overwritten)."""
    seed = training_seed(cfg, update)
    if staggered_refresh(cfg):
        return base.refresh_pool(seed)
    return envs.reset(seed=seed)[0], None


def training_seed(cfg: DictConfig, update: int) -> int:
    """The seed of the training mazes drawn at ``update``: a function of (run seed, update) alone, so a
    resumed run draws the same pool."""
    return derive_seed(int(cfg.seed), f"train/{update}") % 2**31


def restore_training_env(envs: gym.vector.VectorEnv, base: MazeVectorEnv, state: dict[str, Any]) -> Any:
    """Put a staggered run's training env back where its checkpoint left it (mazes, episodes, the levels
    the curriculum chose next); returns the observations."""
    base.load_state_dict(state)
    if isinstance(envs, CurriculumVectorWrapper):
        envs.levels.copy_(base.next_level_ids)  # the wrapper's copy of the next levels, in place
    return base.current_observation()


def uses_action_mask(cfg: DictConfig) -> bool:
    """Whether the policy's invalid actions are masked: maze moves into walls with ``env.mask_actions``
    (recall has no invalid actions); training and evaluation mask alike."""
    return cfg.env.family == "maze" and bool(cfg.env.mask_actions)


class GreedyPolicy:
    """An :class:`ActorCritic` as :func:`agents.rollout.rollout`'s policy: the most likely legal action,
    the recurrent state carried from step to step."""

    def __init__(self, net: ActorCritic, num_envs: int, device: torch.device, use_mask: bool):
        self.net, self.num_envs, self.device = net, num_envs, device
        self.uses_action_mask = use_mask

    def begin(self, obs: Any) -> None:
        self.state = self.net.initial_state(self.num_envs, self.device)
        self.starts = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)

    def act(self, obs: Any, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _, self.state = self.net(obs["obs"], self.state, self.starts)
        self.starts = torch.zeros_like(self.starts)
        logits = masked_logits(logits, mask)
        actions = logits.argmax(-1)
        return actions, torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)

    def observe(self, actions: torch.Tensor, obs: Any, keep_stream: bool) -> None:
        """The state was advanced in :meth:`act`."""


def masked_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Invalid actions' logits set so low that they get zero probability (finite, so the entropy stays
    finite, as in sb3-contrib's MaskablePPO)."""
    return logits if mask is None else logits.masked_fill(~mask.bool(), -1e8)


class NamedObs(gym.vector.VectorWrapper):
    """Hands a plain-tensor observation (maze grid, recall stream) over as ``{"obs": obs}``, the mapping
    :func:`agents.rollout.rollout` keeps first and final observations of."""

    def reset(self, **kwargs: Any) -> tuple[Any, Any]:
        obs, info = self.env.reset(**kwargs)
        return {"obs": obs}, info

    def step(self, actions: Any) -> tuple[Any, ...]:
        obs, *rest = self.env.step(actions)
        return ({"obs": obs}, *rest)


class Evaluator:
    """Greedy walks on fresh episodes, per ladder level, from seeds disjoint from training.

    For mazes it also walks the training env's current maze pool (``pool``), so the report shows how much
    of the success is memorised mazes: training regenerates its pool every ``env.reseed_every`` updates.
    """

    def __init__(self, cfg: DictConfig, device: torch.device, train_base: TorchVectorEnv):
        self.cfg, self.device, self.train_base = cfg, device, train_base
        self.episodes = int(cfg.eval.episodes)
        self.seed = derive_seed(int(cfg.seed), "eval") % 2**31
        self.maze = cfg.env.family == "maze"
        pool = EVAL_POOL_FACTOR * self.episodes
        self.fresh = make_vector_env(
            cfg, make_task(cfg), self.episodes, self.seed, device, pool, AutoresetMode.NEXT_STEP
        )
        self.on_pool: MazeVectorEnv | None = None
        if self.maze:
            self.on_pool = make_vector_env(
                cfg, make_task(cfg), self.episodes, self.seed, device, 1, AutoresetMode.NEXT_STEP
            )
            self.on_pool.share_pool(train_base)  # its current bank; read-only: never refilled

    @torch.no_grad()
    def level(self, net: ActorCritic, index: int, on_pool: bool = False) -> dict[str, float]:
        """Greedy success (and return, optimal rate, distinct episodes) at ladder level ``index``."""
        env = self.on_pool if on_pool else self.fresh
        env.set_level(index)
        policy = GreedyPolicy(net, self.episodes, self.device, uses_action_mask(self.cfg))
        was_training = net.training
        net.eval()
        out = rollout(NamedObs(env), policy, seed=None if on_pool else self.seed + index)
        net.train(was_training)
        final = out.final
        result = {"success": float(final["success"].float().mean())}
        if self.maze:
            result["optimal"] = float(final["solved_optimally"].float().mean())
            first = out.first_obs.get("obs")
            if first is not None:
                result["distinct"] = float(torch.unique(first.flatten(1), dim=0).shape[0])
        else:
            result["return"] = float(final["accuracy"].float().mean())  # the episode's return
        return result

    def table(self, net: ActorCritic) -> dict[str, dict[str, float]]:
        """Every ladder level on fresh episodes (and the training pool for mazes)."""
        rows = {}
        for index, name in enumerate(self.fresh.task.ladder.names):
            row = {f"fresh_{k}": v for k, v in self.level(net, index).items()}
            if self.maze:
                row["pool_success"] = self.level(net, index, on_pool=True)["success"]
            rows[name] = row
        return rows
