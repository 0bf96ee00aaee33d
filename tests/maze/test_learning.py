"""(slow) An RL agent learns the maze task through the SB3 adapter on the native vector env."""

import pytest
import torch

from envs.common.sb3 import SB3VecEnvAdapter
from envs.maze import MazeLevel
from envs.maze.vector import MazeVectorEnv


@pytest.mark.slow
def test_maskable_ppo_solves_5x5_mazes():
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)  # small MLP: one thread is fastest, above all on a shared machine
    level = MazeLevel("5x5", 5, 5)
    train = SB3VecEnvAdapter(MazeVectorEnv(32, device="cpu", obs_mode="grid", levels=[level], seed=0))
    model = MaskablePPO(
        "MlpPolicy",
        train,
        n_steps=64,
        batch_size=512,
        n_epochs=4,
        learning_rate=1e-3,
        ent_coef=0.01,
        policy_kwargs={"net_arch": [256, 256]},
        seed=0,
    )
    model.learn(300_000)
    evaluate = MazeVectorEnv(256, device="cpu", obs_mode="grid", levels=[level], seed=123, pool_size=512)
    venv = SB3VecEnvAdapter(evaluate)
    obs = venv.reset()
    successes, episodes = 0, 0
    while episodes < 500:
        actions, _ = model.predict(obs, deterministic=True, action_masks=venv.action_masks())
        obs, _, dones, infos = venv.step(actions)
        for done, info in zip(dones, infos):
            if done:
                episodes += 1
                successes += int(info["is_success"])
    assert successes / episodes >= 0.9, f"success rate {successes / episodes:.2f}"
