"""RecallVectorEnv: a batch of recall episodes stepped together in torch, on any device.

The same episodes, rewards and infos as :class:`envs.recall.env.RecallEnv` (on the CPU, at one level and
seeded alike, sub-env ``i`` of a 16-env batch plays the single env's episode ``i``), with per-sub-env
levels: observations are padded to the ladder's longest sequence, and ``set_level`` (an index, a name, a
level, or a LongTensor of ladder indices from a curriculum) applies at each sub-env's next reset.
``step`` has no host sync and no loop over sub-envs: an autoreset regenerates the whole batch (only as
wide as the longest level set so far) and keeps the rows being reset, which keeps the step branch-free.

    vec = gymnasium.make_vec("mindgym/Copy-v0", num_envs=512, vectorization_mode="vector_entry_point",
                             obs_mode="stream", device="cuda")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from gymnasium.vector import AutoresetMode

from envs.common.task import LevelLike
from envs.common.vector import TorchVectorEnv, check_task_arguments
from envs.recall.env import recall_spaces
from envs.recall.task import RecallTask
from envs.recall.tokens import PAD


class RecallVectorEnv(TorchVectorEnv):
    """``num_envs`` recall episodes of one family stepped together in torch, on any device.

    ## Description

    The task of :class:`~envs.recall.env.RecallEnv` (write back the answers a sequence stored: copy,
    repeat-copy, associative recall, needle), batched with per-sub-env levels of one
    :class:`~envs.recall.task.RecallTask`. ``step`` has no host sync and no loop over sub-envs: an
    autoreset regenerates the batch (only as wide as the longest level set so far) and keeps the rows
    being reset.

    ## Action Space

    ``MultiDiscrete`` of ``num_envs`` x ``Discrete(len(task.action_token_ids))``: action ``a`` writes
    answer token ``action_token_ids[a]``.

    ## Observation Space

    ``obs_mode="sequence"``: ``{"tokens": (N, T) int64, "length": (N, 1) int64}``, the sequence up to
    each sub-env's next answer with its own answers written in, right-padded with PAD (256);
    ``obs_mode="stream"``: (N,) int64, one token a step. Tensors on ``device`` (NumPy with ``numpy=True``).

    ## Rewards

    ``1 / num_answers`` per correct answer token (an episode returns a value in [0, 1]); 0 elsewhere,
    and on the step a NEXT_STEP autoreset spends restarting a finished sub-env.

    ## Starting State

    A fresh sequence of each sub-env's level from the family's generator. On the CPU, at one level and
    seeded alike, sub-env ``i`` of a 16-env batch plays RecallEnv's episode ``i``.

    ## Episode End

    Terminated when every answer is written (sequence) or the last token is reached (stream); never
    truncated. ``info``: (num_envs,) tensors ``success``, ``accuracy`` and ``level``.

    ## Arguments

    - ``num_envs``: sub-envs in the batch.
    - ``task``: a RecallTask to play, shared and never copied (the supervised sampler and this env are
      views of one task). Excludes ``levels``; ``family`` may only repeat the task's own family (the
      registered ids pass theirs).
    - ``device`` (``"auto"``), ``obs_mode`` (``"sequence"`` or ``"stream"``), ``autoreset_mode``,
      ``numpy``, ``seed``.
    - ``level``: the level every sub-env starts at (default: the task's current level; the first when
      the env builds its task). ``levels``: the ladder (default: the family's documented one); spaces
      are sized from it, so a level set later must fit.
    - ``family``: ``"copy"``, ``"repeat_copy"``, ``"associative"`` or ``"needle"``; needed without
      ``task``.

    ```python
    >>> import envs, gymnasium as gym
    >>> vec = gym.make_vec("mindgym/Copy-v0", num_envs=512, vectorization_mode="vector_entry_point",
    ...                    obs_mode="stream", device="cuda")
    >>> task = RecallTask("associative")
    >>> vec = RecallVectorEnv(64, task=task, device="cpu")   # the same Task object as the sampler
    ```
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        task: RecallTask | None = None,
        device: str | torch.device = "auto",
        obs_mode: str = "sequence",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        numpy: bool = False,
        seed: int | None = None,
        level: LevelLike | None = None,
        levels: Sequence[Any] | None = None,
        family: str | None = None,
    ):
        if isinstance(task, RecallTask) and family == task.family.name:
            family = None  # the registered env ids pass their family: the task's own is no conflict
        check_task_arguments("RecallVectorEnv", task, RecallTask, levels=levels, family=family)
        start = None if task is None or level is None else task.resolve_level(level)
        if task is None:
            if family is None:
                raise ValueError("RecallVectorEnv needs family= (e.g. 'copy') or task= (a RecallTask).")
            task = RecallTask(family, levels=levels, level=0 if level is None else level)
        observation_space, action_space = recall_spaces(task, obs_mode)
        super().__init__(
            task,
            num_envs,
            observation_space,
            action_space,
            device,
            autoreset_mode,
            numpy,
            seed,
            level=start,
        )
        self.obs_mode = obs_mode
        self.action_tokens = torch.tensor(task.action_token_ids, dtype=torch.long, device=self.device)
        width, answers = task.max_length, task.max_answers
        self._columns = torch.arange(width, device=self.device)
        self._rows = torch.arange(num_envs, device=self.device)
        self._answer_slots = torch.arange(answers, device=self.device)
        self._width, self._answers = task.level.sequence_length, task.level.num_answers
        self.target = torch.full((num_envs, width), PAD, dtype=torch.long, device=self.device)
        self.answer_pos = torch.full((num_envs, answers), width, dtype=torch.long, device=self.device)
        self.written = torch.full((num_envs, answers), PAD, dtype=torch.long, device=self.device)
        self.num_answers = torch.ones(num_envs, dtype=torch.long, device=self.device)
        self.length = torch.ones(num_envs, dtype=torch.long, device=self.device)
        self.answered = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.correct = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.t = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    def set_level(self, level: LevelLike | torch.Tensor, env_ids: Any = None) -> None:
        """Level of all sub-envs (or ``env_ids``) from their next reset; a custom level must fit.

        Episodes are generated only as wide as the longest level set so far; a LongTensor of levels on an
        accelerator is not inspected (that would sync), so it widens generation to the ladder's longest.
        """
        if not isinstance(level, torch.Tensor):
            self._check_env_ids(env_ids)  # before a custom level joins the ladder
            level = self.task.resolve_level(level)
        super().set_level(level, env_ids)
        if not isinstance(level, torch.Tensor):
            chosen = [self.task.ladder[level]]
        elif level.device.type == "cpu":
            chosen = [self.task.ladder[i] for i in set(level.tolist())]
        else:
            chosen = list(self.task.ladder)
        self._width = max([self._width, *(lv.sequence_length for lv in chosen)])
        self._answers = max([self._answers, *(lv.num_answers for lv in chosen)])

    # ------------------------------------------------------------------ TorchVectorEnv hooks
    def _reset_envs(self, mask: torch.Tensor) -> None:
        width, answers = self._width, self._answers
        fresh = self.task.generate(self.level_ids, self.generator, width=width, answers=answers)
        keep = mask.unsqueeze(1)
        self.target[:, :width] = torch.where(keep, fresh.tokens, self.target[:, :width])
        self.answer_pos[:, :answers] = torch.where(keep, fresh.answer_pos, self.answer_pos[:, :answers])
        self.num_answers = torch.where(mask, fresh.num_answers, self.num_answers)
        self.length = torch.where(mask, fresh.length, self.length)
        self.answered = self.answered.masked_fill(mask, 0)
        self.correct = self.correct.masked_fill(mask, 0)
        self.t = self.t.masked_fill(mask, 0)

    def _step_envs(
        self, actions: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        token = self.action_tokens[actions]
        next_answer = self._current_answer()
        due = active & (self.answered < self.num_answers)
        if self.obs_mode == "sequence":
            position = next_answer
        else:
            position = (self.t + 1).clamp(max=self.target.shape[1] - 1)
            due = due & (position == next_answer)
        correct = due & (token == self.target[self._rows, position])
        slot = self.answered.clamp(max=self.written.shape[1] - 1)
        self.written[self._rows, slot] = torch.where(due, token, self.written[self._rows, slot])
        self.answered = self.answered + due.long()
        self.correct = self.correct + correct.long()
        self.t = self.t + active.long()
        if self.obs_mode == "sequence":
            terminated = active & (self.answered >= self.num_answers)
        else:
            terminated = active & (self.t >= self.length - 1)
        reward = correct.float() / self.num_answers.float()
        return reward, terminated, torch.zeros_like(terminated)

    def _observe(self) -> dict[str, torch.Tensor] | torch.Tensor:
        if self.obs_mode == "stream":
            t = self.t.clamp(max=self.target.shape[1] - 1)
            last = (self.answered - 1).clamp(min=0)
            just_answered = (self.answered > 0) & (self.answer_pos[self._rows, last] == t)
            return torch.where(just_answered, self.written[self._rows, last], self.target[self._rows, t])
        width = self._width
        shown = torch.where(self.answered < self.num_answers, self._current_answer(), self.length)
        tokens = torch.full_like(self.target, PAD)
        tokens[:, :width] = torch.where(
            self._columns[:width] < shown.unsqueeze(1), self.target[:, :width], PAD
        )
        # The agent's own answers replace the true ones; unwritten slots rewrite column 0 with itself.
        written = self._answer_slots < self.answered.unsqueeze(1)
        index = torch.where(written, self.answer_pos, 0)
        tokens.scatter_(1, index, torch.where(written, self.written, tokens[:, :1]))
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
