"""(slow) SB3 PPO with the adaptive curriculum on the native maze env climbs at least two levels."""

import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from curricula import AdaptiveSchedule
from curricula.sb3 import CurriculumCallback, CurriculumVecEnv
from envs.common.sb3 import SB3VecEnvAdapter
from envs.maze.levels import MazeLevel
from envs.maze.vector import MazeVectorEnv


class StopAtLevel(BaseCallback):
    """Stop training once the frontier reaches ``level`` (checked every ``check_every`` steps)."""

    def __init__(self, env: CurriculumVecEnv, level: int, check_every: int):
        super().__init__()
        self.env, self.level, self.check_every = env, level, check_every

    def _on_step(self) -> bool:
        return self.num_timesteps % self.check_every != 0 or int(self.env.schedule.level()) < self.level


LADDER = [MazeLevel("2x2", 2, 2), MazeLevel("2x3", 2, 3), MazeLevel("3x3", 3, 3), MazeLevel("4x4", 4, 4)]


@pytest.mark.slow
def test_ppo_with_the_adaptive_curriculum_climbs_two_maze_levels():
    torch.manual_seed(0)
    maze = MazeVectorEnv(
        num_envs=16, device="cpu", obs_mode="egocentric", levels=LADDER, pool_size=256, seed=0
    )
    schedule = AdaptiveSchedule(len(LADDER), threshold=0.9, min_episodes=64, replay=0.2, window=64)
    curriculum_env = CurriculumVecEnv(SB3VecEnvAdapter(maze), schedule, seed=0)
    venv = VecNormalize(curriculum_env, norm_reward=False)
    model = PPO(
        "MlpPolicy", venv, n_steps=64, batch_size=256, learning_rate=1e-3, ent_coef=0.01, seed=0, device="cpu"
    )
    stop = StopAtLevel(curriculum_env, level=2, check_every=1024)
    model.learn(60_000, callback=[CurriculumCallback(log_every=4096), stop])
    summary = curriculum_env.summary()
    assert summary["level"] >= 2, summary
    assert summary["success_rate"][0] >= 0.8 and summary["success_rate"][1] >= 0.8, summary
