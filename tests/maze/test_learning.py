"""(slow) An RL agent learns the maze task through the SB3 adapter on the native vector env."""

import pytest
import torch

from envs.common.sb3 import SB3VecEnvAdapter
from envs.maze import MazeLevel
from envs.maze.vector import MazeVectorEnv

LEVEL = MazeLevel("5x5", 5, 5)


def _env(num_envs: int) -> MazeVectorEnv:
    # A fixed pool of 32 DFS mazes (seeded), random start/goal pairs inside it: the training distribution.
    return MazeVectorEnv(num_envs, device="cpu", obs_mode="grid", levels=[LEVEL], seed=0, pool_size=32)


@pytest.mark.slow
def test_maskable_ppo_solves_5x5_mazes():
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)  # small MLP: one thread is fastest, above all on a shared machine
    model = MaskablePPO(
        "MlpPolicy",
        SB3VecEnvAdapter(_env(32)),
        n_steps=64,
        batch_size=512,
        n_epochs=8,
        learning_rate=1e-3,
        ent_coef=0.005,
        policy_kwargs={"net_arch": [256, 256]},
        seed=0,
    )
    model.learn(250_000)
    venv = SB3VecEnvAdapter(_env(128))
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
