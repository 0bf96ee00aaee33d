"""(slow) sb3-contrib's RecurrentPPO learns the easiest stream level through the SB3 VecEnv adapter."""

import numpy as np
import pytest
import torch

from envs.common.sb3 import SB3VecEnvAdapter
from envs.recall.vector import RecallVectorEnv


def success_rate(model, episodes: int = 300) -> float:
    env = SB3VecEnvAdapter(RecallVectorEnv(64, family="copy", obs_mode="stream", device="cpu", seed=123))
    obs, state, starts, outcomes = env.reset(), None, np.ones(64, dtype=bool), []
    while len(outcomes) < episodes:
        actions, state = model.predict(obs, state=state, episode_start=starts, deterministic=True)
        obs, _, starts, infos = env.step(actions)
        outcomes += [info["is_success"] for info, done in zip(infos, starts) if done]
    return float(np.mean(outcomes))


@pytest.mark.slow
def test_recurrent_ppo_learns_stream_copy_well_above_chance():
    from sb3_contrib import RecurrentPPO

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small LSTM batches: extra threads only contend
    try:
        _train_and_check(RecurrentPPO)
    finally:
        torch.set_num_threads(threads)


def _train_and_check(RecurrentPPO) -> None:
    torch.manual_seed(0)
    env = SB3VecEnvAdapter(RecallVectorEnv(16, family="copy", obs_mode="stream", device="cpu", seed=0))
    model = RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=32,
        batch_size=128,
        n_epochs=4,
        learning_rate=3e-3,
        gamma=0.9,
        policy_kwargs={"lstm_hidden_size": 32, "net_arch": []},
        seed=0,
    )
    untrained = success_rate(model, episodes=100)
    model.learn(12_000)
    # Level 0 copies one of 2 symbols; a policy without memory gets at most 1/2 (untrained: ~1/64).
    assert untrained < 0.5
    assert success_rate(model) >= 0.9
