"""A minimal Task and TorchVectorEnv for testing the shared base class: count to the level's length.

Action 1 increments the counter, action 0 does nothing; reaching ``length`` terminates with reward 1;
``2 * length`` steps truncate.
"""

from dataclasses import dataclass

import gymnasium as gym
import torch

from envs.common import SupervisedBatch, Task
from envs.common.vector import TorchVectorEnv


@dataclass(frozen=True)
class CounterLevel:
    name: str
    length: int


class CounterTask(Task[CounterLevel]):
    level_cls = CounterLevel

    @classmethod
    def default_levels(cls):
        return [CounterLevel("L2", 2), CounterLevel("L3", 3), CounterLevel("L5", 5)]

    @property
    def vocab_size(self) -> int:
        return 8

    @property
    def action_token_ids(self) -> list[int]:
        return [0, 1]

    def sample_batch(self, batch_size, device=None, generator=None, level=None) -> SupervisedBatch:
        tokens = torch.zeros(batch_size, 4, dtype=torch.long, device=device)
        return SupervisedBatch(tokens, tokens, torch.ones_like(tokens, dtype=torch.bool))


class CounterVectorEnv(TorchVectorEnv):
    def __init__(self, num_envs=4, device="cpu", **kwargs):
        task = CounterTask()
        super().__init__(
            task, num_envs, gym.spaces.Box(0, 10, (1,)), gym.spaces.Discrete(2), device, **kwargs
        )
        self.lengths = torch.tensor([lv.length for lv in task.ladder], device=self.device)
        self.count = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.t = torch.zeros_like(self.count)
        self.resets = torch.zeros_like(self.count)

    def _reset_envs(self, mask):
        self.count = self.count.masked_fill(mask, 0)
        self.t = self.t.masked_fill(mask, 0)
        self.resets = self.resets + mask.long()

    def _step_envs(self, actions, active):
        self.count = self.count + (actions * active)
        self.t = self.t + active.long()
        target = self.lengths[self.level_ids]
        terminated = self.count >= target
        truncated = ~terminated & (self.t >= 2 * target)
        return terminated.float(), terminated, truncated

    def _observe(self):
        return self.count.float().unsqueeze(-1)

    def _info(self):
        return {"success": self.count >= self.lengths[self.level_ids], "level": self.level_ids}
