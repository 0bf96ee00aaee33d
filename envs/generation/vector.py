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
from gymnasium.vector import AutoresetMode

from envs.common.spaces import sequence_space
from envs.common.task import LevelLike
from envs.common.vector import TorchVectorEnv, check_task_arguments
from envs.generation.corpus import Corpus
from envs.generation.reward import TextScore
from envs.generation.task import TextLevel, TextQualityTask
from envs.generation.tokens import NUM_BYTES, PAD_ID

OBS_MODES = ("tokens",)


def check_prompt_group_size(group_size: Any, num_envs: int) -> None:
    """Refuse a prompt group size that is not a positive int dividing ``num_envs``, naming the fix."""
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(
            f"prompt_group_size must be an int >= 1 (1: a prompt per sub-env), got {group_size!r}."
        )
    if num_envs % group_size:
        raise ValueError(
            f"prompt_group_size={group_size} does not divide num_envs={num_envs}: sub-envs share prompts in "
            f"whole groups; pass a num_envs that is a multiple of {group_size} or another prompt_group_size."
        )


class TextQualityVectorEnv(TorchVectorEnv):
    """``num_envs`` generation episodes stepped together in torch, on any device.

    ## Description

    The task of :class:`~envs.generation.env.TextQualityEnv` (continue a corpus prompt, one byte a
    step, judged by the reference n-gram scorer), batched with per-sub-env levels of one
    :class:`~envs.generation.task.TextQualityTask`. The reward is computed with the scorer's tables on
    ``device``: no host sync in ``step``.

    ## Action Space

    ``MultiDiscrete`` of ``num_envs`` x ``Discrete(256)``: each sub-env's next byte.

    ## Observation Space

    ``obs_mode="tokens"`` (the one mode): ``{"tokens": (N, window) int64, "length": (N, 1) int64}``,
    byte tokens of prompt and text so far (the most recent ``window`` bytes), right-padded with PAD (256).

    ## Rewards

    Sparse (default): the episode score ``S`` (weighted fluency, word order, diversity, repetition, length
    and, when weighted, batch diversity across the sub-envs; see :mod:`envs.generation.reward`) on the
    last step. ``dense=True``: the change of ``S`` with every byte. 0 on the step a NEXT_STEP autoreset spends
    restarting a finished sub-env.

    ## Starting State

    Each reset draws a prompt at a uniform random offset in the task's ``prompt_split`` text and shows
    its last ``min(prompt_length, window)`` bytes. With ``prompt_group_size=K`` the sub-envs
    ``i*K .. i*K+K-1`` reset together draw one offset, so a group at one level continues the same prompt
    (K samples of one prompt: what a per-prompt RL baseline, ``RLConfig.group_size``, compares).

    ## Episode End

    Terminated after the level's ``continuation_length`` bytes or at ``eos_byte``; never truncated.
    ``info``: (num_envs,) tensors of every component, ``score``, ``bits_per_byte``, ``word_start_bits``,
    ``seq_rep_<n>``,
    ``distinct_<n>``, ``bytes_written``, ``success`` (S reached the score that ``success_fraction`` of
    held-out human text reaches at the same length) and ``level``.

    ## Arguments

    - ``num_envs``: sub-envs in the batch.
    - ``task``: a TextQualityTask to play, shared and never copied (the supervised sampler and this env
      are views of one task). Excludes ``levels``, ``corpus`` and every task option below.
    - ``device`` (``"auto"``), ``obs_mode`` (``"tokens"``), ``autoreset_mode``, ``numpy``, ``seed``
      (without one, a seed is drawn from the OS).
    - ``level``: the level every sub-env starts at (default: the task's current level; the first when
      the env builds its task). ``levels``: the ladder (default p64-c16 to p16-c256).
    - ``corpus``: a Corpus or a text file / folder path (default: the embedded corpus).
    - ``dense``: pay the score's change every byte instead of the score at the end.
    - ``prompt_group_size`` (default 1: every sub-env draws its own prompt): consecutive groups of this
      many sub-envs share the prompt each reset draws; it must divide ``num_envs``. Sub-envs of a group
      that reset at different steps (an early ``eos_byte``) draw different prompts.
    - ``**task_options`` build the task: ``window``, ``order``, ``reward_weights``, ``diversity_n``,
      ``repetition_n``, ``success_fraction``, ``eos_byte``, ``prompt_split``, ``cache_dir``.

    ```python
    >>> import envs, gymnasium as gym
    >>> vec = gym.make_vec("mindgym/TextQuality-v0", num_envs=512, vectorization_mode="vector_entry_point",
    ...                    device="cuda", reward_weights={"repetition": 2.0}, dense=True)
    >>> task = TextQualityTask(level="p64-c32")
    >>> vec = TextQualityVectorEnv(32, task=task, device="cpu")   # the same Task object as the sampler
    ```
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        task: TextQualityTask | None = None,
        device: str | torch.device = "auto",
        obs_mode: str = "tokens",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        numpy: bool = False,
        seed: int | None = None,
        level: LevelLike | None = None,
        levels: Sequence[TextLevel | Mapping] | None = None,
        corpus: Corpus | str | Path | None = None,
        dense: bool = False,
        prompt_group_size: int = 1,
        **task_options: Any,
    ):
        if obs_mode not in OBS_MODES:
            raise ValueError(
                f"Unknown obs_mode {obs_mode!r} for TextQualityVectorEnv; its one mode is 'tokens' "
                "(the prompt and text so far as byte tokens)."
            )
        passed = dict.fromkeys(task_options, True)  # an option passed counts even as None (eos_byte=None)
        check_task_arguments(
            "TextQualityVectorEnv", task, TextQualityTask, levels=levels, corpus=corpus, **passed
        )
        start = None if task is None or level is None else task.ladder.index(level)
        if task is None:
            task = TextQualityTask(levels, 0 if level is None else level, corpus, **task_options)
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
            level=start,
        )
        check_prompt_group_size(prompt_group_size, num_envs)  # num_envs checked by the base class
        self.obs_mode = obs_mode
        self.dense = bool(dense)
        self.prompt_group_size = int(prompt_group_size)
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
            task.scorer, task.calibration, self.config, num_envs, self._capacity, self.device
        )

    # ----------------------------------------------------------------- levels
    def _refresh_level_tables(self) -> None:
        levels = list(self.task.ladder)
        self._check_levels_fit(levels)  # before any table changes
        self.prompt_lengths = torch.tensor([lv.prompt_length for lv in levels], device=self.device)
        self.target_lengths = torch.tensor([lv.continuation_length for lv in levels], device=self.device)
        self._max_prompt = max(lv.prompt_length for lv in levels)
        self._capacity = max(lv.continuation_length for lv in levels)

    def _check_levels_fit(self, levels: Sequence[TextLevel]) -> None:
        """Refuse a ladder whose longest prompt and continuation do not fit in the prompt split."""
        max_prompt = max(lv.prompt_length for lv in levels)
        capacity = max(lv.continuation_length for lv in levels)
        if len(self.text) <= max_prompt + capacity:
            raise ValueError(
                f"The prompt split has {len(self.text)} bytes, too few for prompts of up to "
                f"{max_prompt} and continuations of up to {capacity} bytes; "
                "use a larger corpus or shorter levels."
            )

    def set_level(self, level: LevelLike | torch.Tensor, env_ids: Any = None) -> None:
        """Set the level of all sub-envs or ``env_ids`` (applies at their next reset); a new custom level
        joins the ladder and the level tables, as does a level another view of the shared task added."""
        if not isinstance(level, torch.Tensor):
            self._check_env_ids(env_ids)  # a refused call must not grow the ladder
            if self.task.ladder.find(level) is None:
                self._check_levels_fit([*self.task.ladder, self.task.ladder.coerce(level)])
        super().set_level(level, env_ids)
        if self.prompt_lengths.numel() != self.task.num_levels:
            self._refresh_level_tables()
            self.score.grow(self._capacity)

    # ----------------------------------------------------------------- TorchVectorEnv hooks
    def _reset_envs(self, mask: torch.Tensor) -> None:
        prompt_len = self.prompt_lengths[self.level_ids]
        high = len(self.text) - self._max_prompt - self._capacity
        groups = self.num_envs // self.prompt_group_size
        offset = torch.randint(0, high, (groups,), device=self.device, generator=self.generator)
        offset = offset.repeat_interleave(self.prompt_group_size)  # size 1: the draw as before groups
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
            terminated & (score >= self.score.threshold())
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
