"""A tiny sequence-observation vector env over EchoTask: reward 1 for repeating the previous token.

Episodes start from one random token and last ``horizon`` steps; each action token is appended to the
observation. Used to exercise the agent's RL loop without depending on a task family.
"""

from __future__ import annotations

import gymnasium as gym
import torch

from envs.common.spaces import sequence_space
from envs.common.vector import TorchVectorEnv
from tests.agents.fixtures import EchoTask


class EchoVectorEnv(TorchVectorEnv):
    def __init__(self, num_envs: int = 8, device: str = "cpu", horizon: int = 4, **kwargs):
        self.task = EchoTask()
        self.horizon = horizon
        self.max_len = horizon + 1
        super().__init__(
            self.task,
            num_envs,
            sequence_space(self.max_len, self.task.vocab_size),
            gym.spaces.Discrete(len(self.task.action_token_ids)),
            device,
            **kwargs,
        )
        self.tokens = torch.zeros(num_envs, self.max_len, dtype=torch.long, device=self.device)
        self.length = torch.ones(num_envs, dtype=torch.long, device=self.device)

    def _reset_envs(self, mask):
        first = torch.randint(2, 12, (self.num_envs,), generator=self.generator, device=self.device)
        fresh = torch.zeros_like(self.tokens)
        fresh[:, 0] = first
        self.tokens = torch.where(mask[:, None], fresh, self.tokens)
        self.length = torch.where(mask, 1, self.length)

    def _step_envs(self, actions, active):
        token = actions + 2
        rows = torch.arange(self.num_envs, device=self.device)
        reward = (token == self.tokens[rows, self.length - 1]).float() * active
        pos = self.length.clamp(max=self.max_len - 1)
        self.tokens[rows, pos] = torch.where(active, token, self.tokens[rows, pos])
        self.length = self.length + active.long()
        truncated = self.length > self.horizon
        return reward, torch.zeros_like(truncated), truncated

    def _observe(self):
        return {"tokens": self.tokens.clone(), "length": self.length.unsqueeze(-1).clone()}

    def _info(self):
        return {"success": self.length > self.horizon}
