"""RecallVectorEnv: a batch of recall episodes stepped together in torch, on any device.

The same episodes, rewards and infos as :class:`envs.recall.env.RecallEnv` (a one-env batch on the CPU
seeded alike draws the same episode), with per-sub-env levels: every sub-env's sequence is padded to the
ladder's longest, and ``set_level`` (an index, a name, a level, or a LongTensor of ladder indices from a
curriculum) applies at each sub-env's next reset. ``step`` has no host sync and no loop over sub-envs;
autoresets regenerate the whole batch and keep the rows being reset, which keeps the step branch-free.

    vec = gymnasium.make_vec("mindgym/Copy-v0", num_envs=512, vectorization_mode="vector_entry_point",
                             mode="stream", device="cuda")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium.vector import AutoresetMode

from envs.common.task import LevelLike
from envs.common.vector import TorchVectorEnv
from envs.recall.env import recall_spaces
from envs.recall.task import RecallTask
from envs.recall.tokens import PAD


class RecallVectorEnv(TorchVectorEnv):
    """``num_envs`` recall episodes of one family in ``sequence`` or ``stream`` mode, on ``device``."""

    def __init__(
        self,
        num_envs: int,
        family: str,
        mode: str = "sequence",
        device: str | torch.device = "auto",
        level: LevelLike = 0,
        levels: Sequence[Any] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        numpy: bool = False,
        seed: int | None = None,
    ):
        task = RecallTask(family, levels=levels, level=level)
        observation_space, action_space = recall_spaces(task, mode)
        super().__init__(task, num_envs, observation_space, action_space, device, autoreset_mode, numpy, seed)
        self.mode = mode
        self.action_tokens = torch.tensor(task.action_token_ids, dtype=torch.long, device=self.device)
        width, answers = task.max_length, task.max_answers
        self._columns = torch.arange(width, device=self.device)
        self._rows = torch.arange(num_envs, device=self.device)
        self.target = torch.full((num_envs, width), PAD, dtype=torch.long, device=self.device)
        self.written = self.target.clone()
        self.is_answer = torch.zeros(num_envs, width, dtype=torch.bool, device=self.device)
        self.answer_pos = torch.full((num_envs, answers), width, dtype=torch.long, device=self.device)
        self.num_answers = torch.ones(num_envs, dtype=torch.long, device=self.device)
        self.length = torch.ones(num_envs, dtype=torch.long, device=self.device)
        self.answered = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.correct = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def set_level(self, level: LevelLike | torch.Tensor, env_ids: Any = None) -> None:
        """Level of all sub-envs or of ``env_ids`` from their next reset; a custom level must fit the spaces."""
        if not isinstance(level, torch.Tensor):
            level = self.task.resolve_level(level)
        super().set_level(level, env_ids)

    # ------------------------------------------------------------------ TorchVectorEnv hooks
    def _reset_envs(self, mask: torch.Tensor) -> None:
        fresh = self.task.generate(self.level_ids, self.generator)
        keep = mask.unsqueeze(1)
        self.target = torch.where(keep, fresh.tokens, self.target)
        self.written = torch.where(keep, fresh.tokens, self.written)
        self.is_answer = torch.where(keep, fresh.answer_mask(), self.is_answer)
        self.answer_pos = torch.where(keep, fresh.answer_pos, self.answer_pos)
        self.num_answers = torch.where(mask, fresh.num_answers, self.num_answers)
        self.length = torch.where(mask, fresh.length, self.length)
        self.answered = self.answered.masked_fill(mask, 0)
        self.correct = self.correct.masked_fill(mask, 0)
        self.t = self.t.masked_fill(mask, 0)

    def _step_envs(
        self, actions: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        token = self.action_tokens[actions]
        if self.mode == "sequence":
            position = self._current_answer()
            due = active & (self.answered < self.num_answers)
        else:
            position = (self.t + 1).clamp(max=self.target.shape[1] - 1)
            due = active & self.is_answer[self._rows, position]
        correct = due & (token == self.target[self._rows, position])
        self.written[self._rows, position] = torch.where(due, token, self.written[self._rows, position])
        self.answered = self.answered + due.long()
        self.correct = self.correct + correct.long()
        self.t = self.t + active.long()
        if self.mode == "sequence":
            terminated = active & (self.answered >= self.num_answers)
        else:
            terminated = active & (self.t >= self.length - 1)
        reward = correct.float() / self.num_answers.float()
        return reward, terminated, torch.zeros_like(terminated)

    def _observe(self) -> dict[str, torch.Tensor] | torch.Tensor:
        if self.mode == "stream":
            return self.written[self._rows, self.t.clamp(max=self.target.shape[1] - 1)]
        shown = torch.where(self.answered < self.num_answers, self._current_answer(), self.length)
        tokens = torch.where(self._columns < shown.unsqueeze(1), self.written, PAD)
        return {"tokens": tokens, "length": shown.unsqueeze(1)}

    def _info(self) -> dict[str, torch.Tensor]:
        finished = self.answered >= self.num_answers
        return {
            "success": finished & (self.correct == self.num_answers),
            "accuracy": self.correct.float() / self.num_answers.float(),
            "level": self.level_ids.clone(),
        }

    def _current_answer(self) -> torch.Tensor:
        """Position of each sub-env's next answer token (the sequence end once all are written)."""
        index = self.answered.clamp(max=self.answer_pos.shape[1] - 1).unsqueeze(1)
        position = self.answer_pos.gather(1, index).squeeze(1)
        return position.clamp(max=self.target.shape[1] - 1)
