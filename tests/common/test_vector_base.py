"""Autoreset, reset masks, levels and action checks of the TorchVectorEnv base, and its SB3 adapter."""

import numpy as np
import pytest
import torch

from envs.common.sb3 import SB3VecEnvAdapter
from tests.common.counter_env import CounterVectorEnv


def test_next_step_autoreset_ignores_the_action_after_an_episode_ends():
    env = CounterVectorEnv(num_envs=2)
    obs, _ = env.reset(seed=0)
    ones = torch.ones(2, dtype=torch.long)
    env.step(ones)
    obs, rew, term, _, info = env.step(ones)  # length 2 reached
    assert term.tolist() == [True, True] and rew.tolist() == [1.0, 1.0] and bool(info["success"].all())
    obs, rew, term, _trunc, _ = env.step(ones)  # this step only resets
    assert obs[:, 0].tolist() == [0.0, 0.0] and rew.tolist() == [0.0, 0.0] and not term.any()
    assert env.metadata["autoreset_mode"].name == "NEXT_STEP"


def test_same_step_autoreset_reports_final_observation():
    env = CounterVectorEnv(num_envs=2, autoreset_mode="same_step")
    env.reset(seed=0)
    env.step(torch.tensor([1, 0]))
    obs, _, term, _, info = env.step(torch.tensor([1, 0]))
    assert term.tolist() == [True, False]
    assert (
        info["final_obs"][0, 0] == 2.0 and obs[0, 0] == 0.0 and info["_final_obs"].tolist() == [True, False]
    )


def test_reset_mask_and_levels_apply_at_next_reset():
    env = CounterVectorEnv(num_envs=3)
    env.reset(seed=0)
    env.set_level("L5", env_ids=[1])
    assert env.get_level().tolist() == [0, 0, 0]
    env.reset(options={"reset_mask": np.array([False, True, False])})
    assert env.get_level().tolist() == [0, 2, 0]
    assert env.resets.tolist() == [1, 2, 1]
    env.set_level(torch.tensor([1, 1, 1]))
    env.reset()
    assert env.get_level().tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.ones(2, dtype=bool)})
    with pytest.raises(ValueError, match="set_level"):
        env.reset(options={"level": 2})


def test_bad_actions_are_rejected_with_the_accepted_values():
    env = CounterVectorEnv(num_envs=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        env.step(np.array([0, 2]))
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        env.step(torch.zeros(2))


def test_numpy_output_mode():
    env = CounterVectorEnv(num_envs=2, numpy=True)
    obs, info = env.reset(seed=0)
    assert isinstance(obs, np.ndarray) and isinstance(info["success"], np.ndarray)


def test_sb3_adapter_reports_terminal_observation_and_success():
    vec = SB3VecEnvAdapter(CounterVectorEnv(num_envs=2))
    obs = vec.reset()
    assert obs.shape == (2, 1)
    vec.step(np.array([1, 0]))
    obs, rew, done, infos = vec.step(np.array([1, 0]))
    assert done.tolist() == [True, False] and rew[0] == 1.0
    assert infos[0]["terminal_observation"][0] == 2.0 and infos[0]["is_success"] is True
    assert obs[0, 0] == 0.0 and infos[1] == {}
    vec.env_method("set_level", "L3", indices=[0])
    assert vec.env.next_level_ids.tolist() == [1, 0]


def test_unseeded_env_is_reproducible_after_seeding_and_leaves_global_rng_alone():
    torch.manual_seed(5)
    first = CounterVectorEnv(num_envs=2).generator.initial_seed()
    after_first = torch.rand(1)
    torch.manual_seed(5)
    second = CounterVectorEnv(num_envs=2).generator.initial_seed()
    assert first == second and torch.equal(after_first, torch.rand(1))
