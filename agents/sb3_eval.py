"""Greedy evaluation of an SB3 model on fresh episodes (seeds disjoint from training), and on its pool.

Fresh episodes come from single Gymnasium envs seeded ``seed, seed + 1, ...`` in a ``DummyVecEnv``: a
maze env hands out the mazes of its own pool in order, so each env plays ``episodes / envs`` distinct
mazes. Mazes that also sit in the training env's pool are counted apart (``overlap``) and left out of the
fresh score, so "fresh" never includes a maze the model trained on. The same loop drives the training
VecEnv itself for the pool score. MaskablePPO gets action masks; RecurrentPPO carries its LSTM state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from envs.maze.grid import MazeBatch
from envs.maze.vector import MazeVectorEnv

MazeKey = bytes


def maze_key(maze: MazeBatch) -> MazeKey:
    """An exact identity of one maze (size, start, goal, passages), unpadded."""
    return _key(
        maze.height, maze.width, int(maze.start[0]), int(maze.goal[0]), maze.passages[0].cpu().numpy()
    )


def _key(height: int, width: int, start: int, goal: int, passages: np.ndarray) -> MazeKey:
    header = np.array([height, width, start, goal], dtype=np.int64)
    return header.tobytes() + passages.astype(np.uint8).tobytes()


def pool_keys(env: Any) -> set[MazeKey] | None:
    """The keys of every maze in a MazeVectorEnv's pool (None for other envs: nothing to compare)."""
    if not isinstance(env, MazeVectorEnv):
        return None
    pool, keys, big_w = env.pool, set(), env.obs_spec.width
    for index in range(pool.num_levels):
        level = env.task.ladder[index]
        h, w = level.height, level.width
        rows = slice(index * pool.size, (index + 1) * pool.size)
        passages = pool.passages[rows].view(pool.size, -1, big_w)[:, :h, :w].reshape(pool.size, h * w)
        start, goal = ((cells // big_w) * w + cells % big_w for cells in (pool.start[rows], pool.goal[rows]))
        for p, s, g in zip(passages.cpu().numpy(), start.tolist(), goal.tolist(), strict=True):
            keys.add(_key(h, w, s, g, p))
    return keys


def fresh_env(env_id: str, env_kwargs: dict[str, Any], envs: int, seed: int) -> DummyVecEnv:
    """``envs`` single envs of ``env_id`` in a DummyVecEnv, to be reset with seeds ``seed + i``."""
    venv = DummyVecEnv([lambda: gym.make(env_id, **env_kwargs) for _ in range(envs)])
    venv.seed(seed)
    return venv


def play(
    model: BaseAlgorithm,
    venv: VecEnv,
    episodes: int,
    key_of: Callable[[int], MazeKey | None] | None = None,
    exclude: set[MazeKey] | None = None,
) -> dict[str, float]:
    """Greedy episodes on ``venv`` until ``episodes`` have ended, at most ``ceil(episodes / num_envs)`` per
    sub-env (so each single maze env plays distinct mazes of its pool). Returns success, return, episodes
    and ``overlap`` (episodes on mazes in ``exclude``, left out of the scores)."""
    from sb3_contrib import MaskablePPO, RecurrentPPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    n = venv.num_envs
    quota = -(-episodes // n)
    counted = np.zeros(n, dtype=np.int64)
    obs = venv.reset()
    keys = [key_of(i) if key_of else None for i in range(n)]
    starts, state = np.ones(n, dtype=bool), None
    running = np.zeros(n)
    successes, returns, overlap = [], [], 0
    while counted.sum() < quota * n and len(successes) + overlap < episodes:
        if isinstance(model, RecurrentPPO):
            actions, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
        elif isinstance(model, MaskablePPO):
            actions, _ = model.predict(obs, action_masks=get_action_masks(venv), deterministic=True)
        else:
            actions, _ = model.predict(obs, deterministic=True)
        obs, rewards, dones, infos = venv.step(actions)
        running += rewards
        for i in np.flatnonzero(dones):
            if counted[i] < quota:
                counted[i] += 1
                if exclude is not None and keys[i] in exclude:
                    overlap += 1
                else:
                    info = infos[i]
                    successes.append(bool(info.get("is_success", info.get("success", False))))
                    returns.append(float(running[i]))
            running[i] = 0.0
            if key_of:
                keys[i] = key_of(i)
        starts = dones
    scored = max(len(successes), 1)
    return {
        "success": sum(successes) / scored,
        "return": float(np.mean(returns)) if returns else 0.0,
        "episodes": len(successes),
        "overlap": overlap,
    }


def evaluate_fresh(
    model: BaseAlgorithm,
    env_id: str,
    env_kwargs: dict[str, Any],
    episodes: int,
    envs: int,
    seed: int,
    exclude: set[MazeKey] | None,
) -> dict[str, float]:
    """Greedy scores on ``episodes`` fresh episodes from single envs seeded from ``seed`` on."""
    envs = max(1, min(envs, episodes))
    per_env = -(-episodes // envs)
    kwargs = dict(env_kwargs)
    if env_id.startswith("mindgym/Maze"):
        kwargs["pool_size"] = per_env  # each env's pool: exactly the mazes it plays, in order
    venv = fresh_env(env_id, kwargs, envs, seed)
    key_of = None
    if env_id.startswith("mindgym/Maze"):
        key_of = lambda i: maze_key(venv.env_method("current_maze", indices=[i])[0])  # noqa: E731
    try:
        return play(model, venv, episodes, key_of, exclude)
    finally:
        venv.close()
