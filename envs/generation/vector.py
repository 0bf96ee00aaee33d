"""TextQualityVectorEnv: many generation episodes stepped together in torch, on any device.

Each sub-env draws a prompt from the corpus (a random offset into the prompt split), shows prompt + text
written so far in a fixed window of byte tokens (the most recent bytes when it overflows; right-padded with
PAD_ID), takes one byte per step and ends after the level's continuation length or at the end-of-text byte.
The reward (see :mod:`envs.generation.reward`) is computed with the reference scorer's tables on the env's
device: no host sync in ``step``.

    import envs, gymnasium
    vec = gymnasium.make_vec("mindgym/TextQuality-v0", num_envs=512, vectorization_mode="vector_entry_point",
                             device="cuda", reward_weights={"repetition": 2.0}, dense=True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from envs.common.spaces import sequence_space
from envs.common.task import LevelLike
from envs.common.vector import TorchVectorEnv
from envs.generation.corpus import Corpus
from envs.generation.reward import TextScore
from envs.generation.scorer import DEFAULT_ORDER
from envs.generation.task import TextLevel, TextQualityTask
from envs.generation.tokens import NUM_BYTES, PAD_ID


class TextQualityVectorEnv(TorchVectorEnv):
    """``num_envs`` generation episodes on ``device``; see the module docstring and TextQualityTask."""

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "auto",
        level: LevelLike = 0,
        levels: Sequence[TextLevel | Mapping] | None = None,
        autoreset_mode: str = "next_step",
        numpy: bool = False,
        seed: int | None = None,
        *,
        corpus: Corpus | str | Path | None = None,
        dense: bool = False,
        reward_weights: Mapping[str, float] | None = None,
        window: int = 256,
        order: int = DEFAULT_ORDER,
        diversity_n: int = 2,
        repetition_n: int = 4,
        success_fraction: float = 0.75,
        eos_byte: int | None = 0,
        prompt_split: str = "train",
        cache_dir: str | Path | None = None,
        task: TextQualityTask | None = None,
    ):
        task = task or TextQualityTask(
            levels,
            level,
            corpus,
            window=window,
            order=order,
            reward_weights=reward_weights,
            diversity_n=diversity_n,
            repetition_n=repetition_n,
            success_fraction=success_fraction,
            eos_byte=eos_byte,
            prompt_split=prompt_split,
            cache_dir=cache_dir,
        )
        super().__init__(
            task,
            num_envs,
            sequence_space(task.window, task.vocab_size),
            gym.spaces.Discrete(NUM_BYTES),
            device,
            autoreset_mode,
            numpy,
            # without a seed, draw one from the OS, leaving torch's global generator as it was
            seed if seed is not None else torch.Generator().seed() % (2**63),
        )
        self.dense = bool(dense)
        self.window = task.window
        self.config = task.reward_config
        self.text = task.split_bytes(task.prompt_split, self.device)
        self._columns = torch.arange(self.window, device=self.device)
        self._tail_columns = torch.arange(task.order - 1, device=self.device)
        self.tokens = torch.full((num_envs, self.window), PAD_ID, dtype=torch.long, device=self.device)
        self.length = torch.ones(num_envs, dtype=torch.long, device=self.device)
        self.prev_score = torch.zeros(num_envs, device=self.device)
        self.success = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._components: dict[str, torch.Tensor] | None = None  # of the last step, until a reset
        self._refresh_level_tables()
        self.score = TextScore(
            task.scorer, task.reference_bits, self.config, num_envs, self._capacity, self.device
        )

    # ----------------------------------------------------------------- levels
    def _refresh_level_tables(self) -> None:
        levels = list(self.task.ladder)
        self.prompt_lengths = torch.tensor([lv.prompt_length for lv in levels], device=self.device)
        self.target_lengths = torch.tensor([lv.continuation_length for lv in levels], device=self.device)
        self._max_prompt = max(lv.prompt_length for lv in levels)
        self._capacity = max(lv.continuation_length for lv in levels)
        if len(self.text) <= self._max_prompt + self._capacity:
            raise ValueError(
                f"The prompt split has {len(self.text)} bytes, too few for prompts of up to "
                f"{self._max_prompt} and continuations of up to {self._capacity} bytes; "
                "use a larger corpus or shorter levels."
            )

    def set_level(self, level: LevelLike | torch.Tensor, env_ids: Any = None) -> None:
        """Set the level of all sub-envs or ``env_ids`` (applies at their next reset); a new custom level
        joins the ladder and the level tables."""
        known = self.task.num_levels
        super().set_level(level, env_ids)
        if self.task.num_levels != known:
            self._refresh_level_tables()
            self.score.grow(self._capacity)

    # ----------------------------------------------------------------- TorchVectorEnv hooks
    def _reset_envs(self, mask: torch.Tensor) -> None:
        prompt_len = self.prompt_lengths[self.level_ids]
        high = len(self.text) - self._max_prompt - self._capacity
        offset = torch.randint(0, high, (self.num_envs,), device=self.device, generator=self.generator)
        visible = prompt_len.clamp(max=self.window)
        first = offset + prompt_len - visible  # keep the most recent bytes of a long prompt
        prompt = self._gather_text((first[:, None] + self._columns).clamp(max=len(self.text) - 1))
        prompt = torch.where(self._columns < visible[:, None], prompt, PAD_ID)
        self.tokens = torch.where(mask[:, None], prompt, self.tokens)
        self.length = torch.where(mask, visible, self.length)
        context = self._tail_columns.numel()
        tail_len = prompt_len.clamp(max=context)
        tail_index = (offset + prompt_len - context)[:, None] + self._tail_columns
        tail = self._gather_text(tail_index.clamp(min=0))
        tail = torch.where(self._tail_columns >= context - tail_len[:, None], tail, 0)
        self.score.reset(mask, tail, tail_len, self.target_lengths[self.level_ids])
        self.prev_score = self.prev_score.masked_fill(mask, 0.0)
        self.success = self.success & ~mask
        self._components = None

    def _step_envs(
        self, actions: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.config.eos_byte is None:
            stop = torch.zeros_like(active)
        else:
            stop = active & (actions == self.config.eos_byte)
        write = active & ~stop
        self.score.add(actions, write)
        full = self.length >= self.window
        shifted = torch.cat([self.tokens[:, 1:], self.tokens[:, :1]], dim=1)
        self.tokens = torch.where((write & full)[:, None], shifted, self.tokens)
        position = self.length.clamp(max=self.window - 1)
        current = self.tokens.gather(1, position[:, None]).squeeze(1)
        self.tokens.scatter_(1, position[:, None], torch.where(write, actions, current)[:, None])
        self.length = torch.where(write & ~full, self.length + 1, self.length)

        terminated = active & (stop | (self.score.count >= self.score.target))
        self._components = self.score.components()
        score = self.score.score(self._components)
        if self.dense:
            reward = torch.where(active, score - self.prev_score, 0.0)
        else:
            reward = torch.where(terminated, score, 0.0)
        self.prev_score = torch.where(active, score, self.prev_score)
        self.success = self.success | (
            terminated & (score >= self.config.success_fraction * self.config.max_score)
        )
        return reward, terminated, torch.zeros_like(terminated)

    def _gather_text(self, index: torch.Tensor) -> torch.Tensor:
        """Corpus bytes at ``index`` (any shape) as int64 token ids."""
        return self.text.index_select(0, index.flatten()).view(index.shape).long()

    def _observe(self) -> dict[str, torch.Tensor]:
        return {"tokens": self.tokens, "length": self.length[:, None]}

    def _info(self) -> dict[str, torch.Tensor]:
        components = self._components if self._components is not None else self.score.components()
        return {
            **components,
            "score": self.score.score(components),
            "bytes_written": self.score.count,
            "success": self.success,
            "level": self.level_ids,
        }
