import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers mindgym/Maze-v0)
from envs.maze import MazeTask
from envs.maze import tokens as tok
from envs.maze.env import MazeEnv

from .helpers import SMALL

CORRIDOR = "#####\n#S G#\n#####"


@pytest.mark.parametrize("obs_mode", ["grid", "tokens", "egocentric"])
def test_gymnasium_and_sb3_checkers_pass(obs_mode):
    env = gym.make("mindgym/Maze-v0", obs_mode=obs_mode, levels=SMALL, render_mode="rgb_array")
    check_env(env.unwrapped)
    with pytest.warns(UserWarning) if obs_mode != "tokens" else _nothing():
        sb3_check_env(env.unwrapped)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_rewards_termination_and_wall_penalty():
    env = MazeEnv(maze=CORRIDOR, step_cost=0.01, wall_penalty=0.1)
    _, info = env.reset(seed=0)
    assert info["optimal_length"] == 2 and not info["success"]
    assert env.action_masks().tolist() == [False, True, False, False]
    _, reward, terminated, truncated, info = env.step(0)  # bump into the wall above
    assert reward == pytest.approx(-0.11) and not terminated and not truncated
    env.step(1)
    _, reward, terminated, _, info = env.step(1)
    assert terminated and info["success"] and not info["solved_optimally"] and reward == pytest.approx(0.99)


def test_truncation_after_step_limit():
    env = MazeEnv(maze=CORRIDOR, step_limit_factor=2.0)
    env.reset(seed=0)
    outcomes = [env.step(3)[2:4] for _ in range(4)]
    assert outcomes == [(False, False)] * 3 + [(False, True)]


@pytest.mark.parametrize("action", [4, -1, 1.0, "up", np.array([1, 2])])
def test_bad_actions_raise_value_errors(action):
    env = MazeEnv(levels=SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        env.step(action)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="obs_mode"):
        MazeEnv(obs_mode="pixels")
    with pytest.raises(ValueError, match="render_mode"):
        MazeEnv(render_mode="human")
    with pytest.raises(ValueError, match="view_size"):
        MazeEnv(obs_mode="egocentric", view_size=4)


def test_seeding_is_deterministic():
    def run(seed):
        env = MazeEnv(levels=SMALL, obs_mode="grid")
        obs, _ = env.reset(seed=seed)
        trace = [obs]
        for a in [0, 1, 2, 3, 1, 1, 2]:
            trace.append(env.step(a)[0])
        return np.stack(trace)

    assert np.array_equal(run(3), run(3)) and not np.array_equal(run(3), run(4))


def test_oracle_moves_fed_as_tokens_solve_optimally_and_match_sample_batch():
    """Act as a model trained on sample_batch would: read the next move at index length - 1."""
    env = MazeEnv(levels=SMALL, level="5x5", obs_mode="tokens")
    task = MazeTask(levels=SMALL)
    for episode in range(6):
        obs, info = env.reset(seed=episode)
        batch = task.batch_from_mazes(env.current_maze())
        terminated = truncated = False
        while not (terminated or truncated):
            n = int(obs["length"][0])
            assert obs["tokens"][:n].tolist() == batch.tokens[0, :n].tolist()
            assert (obs["tokens"][n:] == tok.PAD).all()
            logits = torch.nn.functional.one_hot(batch.targets[0, n - 1], task.vocab_size).float()
            action = int(logits[task.action_token_ids].argmax())
            obs, _, terminated, truncated, info = env.step(action)
        assert terminated and info["solved_optimally"]
        n = int(obs["length"][0])
        assert obs["tokens"][:n].tolist() == batch.tokens[0, :n].tolist() and batch.tokens[0, n] == tok.EOS


def test_optimal_actions_info_matches_the_oracle():
    env = MazeEnv(levels=SMALL, level="3x6-open")
    _, info = env.reset(seed=1)
    maze = env.current_maze()
    moves_left = int(maze.optimal_length[0])
    while moves_left:
        action = int(np.flatnonzero(info["optimal_actions"])[-1])  # any optimal move, not only the first
        _, _, terminated, _, info = env.step(action)
        moves_left -= 1
        assert terminated == (moves_left == 0)
    assert info["solved_optimally"]


def test_render_modes():
    env = MazeEnv(levels=SMALL, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (9 * 8, 9 * 8, 3)
    text = MazeEnv(maze=CORRIDOR, render_mode="ansi")
    text.reset()
    assert "A" in text.render() and "G" in text.render()


def test_set_level_through_unwrapped_and_info_level():
    env = gym.make("mindgym/Maze-v0", levels=SMALL)
    env.unwrapped.set_level("3x6-open")
    _, info = env.reset(seed=0)
    assert info["level"] == 2
    with pytest.raises(ValueError, match="Unknown level"):
        env.unwrapped.set_level("nope")


def test_a_maze_from_outside_sizes_the_observations():
    env = MazeEnv(maze=CORRIDOR)  # 3 x 5 cells, drawn on 7 x 11 pixels
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 7, 11) and info["optimal_length"] == 2
    assert MazeEnv(maze=CORRIDOR, levels=SMALL).observation_space.shape == (3, 11, 13)
