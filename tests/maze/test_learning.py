"""(slow) An RL agent learns the maze task through the SB3 adapter on the native vector env."""

import pytest
import torch

from envs.common.sb3 import SB3VecEnvAdapter
from envs.maze import MazeLevel
from envs.maze.vector import MazeVectorEnv

LEVEL = MazeLevel("5x5", 5, 5)


def _env(num_envs: int) -> MazeVectorEnv:
    # The training distribution: a seeded pool of 8 DFS mazes with their start and goal. A random policy
    # with action masks reaches the goal within the step limit (3x optimal) in about 8% of episodes.
    return MazeVectorEnv(num_envs, device="cpu", obs_mode="grid", levels=[LEVEL], seed=0, pool_size=8)


@pytest.mark.slow
def test_maskable_ppo_solves_5x5_mazes():
    from sb3_contrib import MaskablePPO

    torch.set_num_threads(1)  # small MLP: one thread is fastest, above all on a shared machine
    model = MaskablePPO(
        "MlpPolicy",
        SB3VecEnvAdapter(_env(32)),
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        learning_rate=3e-4,
        ent_coef=0.01,
        policy_kwargs={"net_arch": [256, 256]},
        seed=0,
    )
    model.learn(300_000)
    venv = SB3VecEnvAdapter(_env(128))
    obs = venv.reset()
    successes, episodes = 0, 0
    while episodes < 400:
        actions, _ = model.predict(obs, deterministic=False, action_masks=venv.action_masks())
        obs, _, dones, infos = venv.step(actions)
        for done, info in zip(dones, infos):
            if done:
                episodes += 1
                successes += int(info["is_success"])
    assert successes / episodes >= 0.9, f"success rate {successes / episodes:.2f}"
