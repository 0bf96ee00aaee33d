"""The ``walls`` observation: the grid's information (walls once an episode, agent and goal each step).

It must rebuild the ``grid`` observation exactly, agree between MazeEnv and MazeVectorEnv, hand the
finished maze's walls to final_obs and the new maze's to the next episode in every autoreset mode, and
stay in its declared space."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers mindgym/Maze-v0)
from envs.maze.env import MazeEnv
from envs.maze.vector import MazeVectorEnv
from envs.maze.walls import grid_from_walls, write_walls
from tests.integrations.contract import AUTORESET_MODES, play_single, play_vector

from .helpers import SMALL, layout_levels


def _grid_of(obs: dict, grid_scale: int = 1) -> np.ndarray:
    """The grid image rebuilt from one sub-env's walls observation (NumPy in, NumPy out)."""
    tensors = [torch.as_tensor(np.asarray(obs[k]))[None] for k in ("walls", "agent", "goal")]
    return grid_from_walls(*tensors, grid_scale=grid_scale)[0].numpy()


def test_gymnasium_and_sb3_checkers_pass():
    env = gym.make("mindgym/Maze-v0", obs_mode="walls", levels=SMALL, render_mode="rgb_array")
    check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)


def test_single_env_observations_stay_in_the_declared_space():
    assert play_single("mindgym/Maze-v0", "walls", steps=300, levels=SMALL) > 0


@pytest.mark.parametrize("autoreset_mode", AUTORESET_MODES)
def test_vector_observations_and_final_observations_stay_in_the_declared_space(autoreset_mode):
    assert play_vector("mindgym/Maze-v0", "walls", autoreset_mode, steps=300, levels=SMALL) > 0


@pytest.mark.parametrize("grid_scale", [1, 3])
def test_single_env_rebuilds_the_grid_observation_exactly(grid_scale):
    """Twin envs on one seed play the same mazes: the rebuilt grid equals the grid mode's every step."""
    walls_env = MazeEnv(obs_mode="walls", levels=SMALL, level=1, pool_size=4)
    grid_env = MazeEnv(obs_mode="grid", levels=SMALL, level=1, pool_size=4, grid_scale=grid_scale)
    (w_obs, _), (g_obs, _) = walls_env.reset(seed=5), grid_env.reset(seed=5)
    rng, episodes = np.random.default_rng(0), 0
    for _ in range(200):
        assert np.array_equal(_grid_of(w_obs, grid_scale), g_obs)
        action = int(rng.integers(4))
        w_obs, _, term, trunc, _ = walls_env.step(action)
        g_obs, _, g_term, g_trunc, _ = grid_env.step(action)
        assert (term, trunc) == (g_term, g_trunc)
        if term or trunc:
            assert np.array_equal(_grid_of(w_obs, grid_scale), g_obs)  # the finished episode's last obs
            episodes += 1
            (w_obs, _), (g_obs, _) = walls_env.reset(), grid_env.reset()
    assert episodes > 2, "the test must cover new mazes"


def test_vector_env_writes_walls_only_for_sub_envs_that_start_an_episode():
    vec = MazeVectorEnv(8, device="cpu", obs_mode="walls", levels=SMALL, level=1, pool_size=64, seed=0)
    obs, _ = vec.reset(seed=0)
    before = obs["walls"].clone()
    assert obs["walls"] is vec._walls  # the walls are the env's buffer: no per-step copy
    obs, *_ = vec.step(torch.zeros(8, dtype=torch.long))
    assert torch.equal(obs["walls"], before)  # a step writes no walls
    vec.reset(options={"reset_mask": torch.tensor([True] + [False] * 7)})
    assert torch.equal(vec._walls[1:], before[1:])
    assert not torch.equal(vec._walls[0], before[0])  # pool of 64: seed 0 draws another maze here


@pytest.mark.parametrize("autoreset_mode", AUTORESET_MODES)
def test_vector_env_matches_the_grid_mode_under_autoreset(autoreset_mode):
    """One seed, same mazes: the rebuilt grid equals the grid mode's obs (and final_obs) every step, so
    after an autoreset the walls are the new maze's and final_obs holds the finished maze's."""
    kwargs = dict(levels=SMALL, pool_size=16, seed=3, autoreset_mode=autoreset_mode, device="cpu")
    walls_vec = MazeVectorEnv(6, obs_mode="walls", **kwargs)
    grid_vec = MazeVectorEnv(6, obs_mode="grid", **kwargs)
    for vec in (walls_vec, grid_vec):
        vec.set_level(torch.tensor([0, 1, 2, 0, 1, 2]))
    (w_obs, _), (g_obs, _) = walls_vec.reset(seed=3), grid_vec.reset(seed=3)
    generator, ended = torch.Generator().manual_seed(0), 0
    for _ in range(120):
        assert torch.equal(grid_from_walls(w_obs["walls"], w_obs["agent"], w_obs["goal"]), g_obs)
        held = {k: v.clone() for k, v in w_obs.items()}
        actions = torch.randint(4, (6,), generator=generator)
        w_obs, _, term, trunc, w_info = walls_vec.step(actions)
        g_obs, _, g_term, g_trunc, g_info = grid_vec.step(actions)
        assert torch.equal(term, g_term) and torch.equal(trunc, g_trunc)
        done = term | trunc
        ended += int(done.sum())
        if autoreset_mode == "same_step":
            final = w_info["final_obs"]
            assert torch.equal(
                grid_from_walls(final["walls"], final["agent"], final["goal"]), g_info["final_obs"]
            )
            assert torch.equal(final["walls"], held["walls"])  # the finished mazes' walls, not the new ones
        if autoreset_mode == "disabled" and done.any():
            (w_obs, _), (g_obs, _) = (v.reset(options={"reset_mask": done}) for v in (walls_vec, grid_vec))
    assert ended > 3, "the test must cover automatic resets"


def test_vector_env_equals_single_envs_on_the_same_mazes():
    levels = layout_levels(4)
    vec = MazeVectorEnv(4, device="cpu", obs_mode="walls", levels=levels, numpy=True, seed=0, pool_size=2)
    vec.set_level(torch.arange(4))
    singles = [MazeEnv(obs_mode="walls", levels=levels, level=i) for i in range(4)]
    obs, _ = vec.reset(seed=0)
    expected = [env.reset(seed=i)[0] for i, env in enumerate(singles)]
    rng, done, ended = np.random.default_rng(1), np.zeros(4, dtype=bool), 0
    for _ in range(60):
        for i, row in enumerate(expected):
            for key in ("walls", "agent", "goal"):
                assert np.array_equal(obs[key][i], row[key]), key
        actions = rng.integers(0, 4, size=4)
        obs, _, terminated, truncated, _ = vec.step(actions)
        expected = [
            env.reset()[0] if done[i] else env.step(int(actions[i]))[0] for i, env in enumerate(singles)
        ]
        done = terminated | truncated
        ended += int(done.sum())
    assert ended > 0


def test_write_walls_copies_only_the_started_sub_envs():
    images = torch.arange(3 * 2 * 2, dtype=torch.uint8).view(3, 2, 2)
    out = torch.full((4, 2, 2), 7, dtype=torch.uint8)
    write_walls(out, images, torch.tensor([2, 0, 1, 1]), torch.tensor([True, False, True, False]))
    assert torch.equal(out[0], images[2]) and torch.equal(out[2], images[1])
    assert (out[1] == 7).all() and (out[3] == 7).all()


def test_grid_scale_is_refused_with_the_walls_mode():
    with pytest.raises(ValueError, match="grid_from_walls"):
        MazeEnv(obs_mode="walls", levels=SMALL, grid_scale=2)


def test_grid_from_walls_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="agent"):
        grid_from_walls(torch.zeros(2, 5, 5, dtype=torch.uint8), torch.zeros(3, 2), torch.zeros(3, 2))
