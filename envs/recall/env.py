"""RecallEnv: one recall episode at a time, as a Gymnasium env (``gymnasium.make("mindgym/Copy-v0")``).

Observation modes (``obs_mode``):
  sequence  the observation is the prompt and the answer tokens written so far (``sequence_space``:
            right-padded ``tokens`` and their ``length``); each step writes one answer token. A
            transformer reads its logits at ``length - 1`` and acts with ``logits[..., action_token_ids]``.
  stream    one token is observed per step (Discrete(vocab_size)); the action is scored only where the
            next token is an answer, as in POPGym. For recurrent agents such as RecurrentPPO.

Every correct answer token earns ``1 / num_answers``, so an episode's return lies in [0, 1]. ``info`` holds
``success`` (exact match of the whole answer once the episode ends), ``accuracy`` (correct answers / all
answers) and ``level`` (the ladder index).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from envs.common.checks import check_discrete_action, check_reset_arguments
from envs.common.spaces import sequence_space
from envs.common.task import LevelLike
from envs.recall.task import RecallTask
from envs.recall.tokens import PAD

MODES = ("sequence", "stream")
EPISODE_BLOCK = 16  # episodes generated per batched call: amortizes torch's per-call overhead


def recall_spaces(task: RecallTask, obs_mode: str) -> tuple[gym.Space, gym.spaces.Discrete]:
    """Observation and action space of one recall env in ``obs_mode``."""
    if obs_mode not in MODES:
        raise ValueError(f"Unknown recall obs_mode {obs_mode!r}; use one of {list(MODES)}.")
    observation = (
        sequence_space(task.max_length, task.vocab_size)
        if obs_mode == "sequence"
        else gym.spaces.Discrete(task.vocab_size)
    )
    return observation, gym.spaces.Discrete(len(task.action_token_ids))


class RecallEnv(gym.Env):
    """Write back what a sequence stored: copy, repeat-copy, associative recall or needle-in-a-haystack.

    ## Description

    An episode is one sequence of a recall family (:class:`~envs.recall.task.RecallTask`) in which some
    positions are answers the agent must write: the copy of ``x_1 .. x_L`` after ``SEP`` (``copy``),
    ``N`` copies after a count token (``repeat_copy``), the values of queried keys after a key-value
    block (``associative``, MQAR), or the digits of a number hidden in ``context_bytes`` of filler text
    (``needle``). Levels grow the length, vocabulary, repeats, pairs or context.

    ## Action Space

    ``Discrete(len(task.action_token_ids))``: action ``a`` writes answer token ``action_token_ids[a]``
    (the answer alphabet of the ladder the env is built with).

    ## Observation Space

    - ``obs_mode="sequence"``: ``Dict(tokens=Box((T,), int64), length=Box((1,), int64))``, T the
      ladder's longest sequence: the sequence up to the next answer position, with the agent's own
      answers in place of the true ones, right-padded with PAD (256). A transformer reads its logits
      at ``length - 1``. Each step writes the next answer.
    - ``obs_mode="stream"``: ``Discrete(vocab_size)``: one token a step (the agent's own answer where
      it wrote one), as in POPGym, for recurrent agents.

    ## Rewards

    ``1 / num_answers`` for each correct answer token, so an episode returns a value in [0, 1]. In
    ``stream`` mode an action is scored only where the next token is an answer; other steps pay 0.

    ## Starting State

    A fresh sequence of the current level from the family's generator (episodes are generated 16 at a
    time; after ``reset(seed=s)`` episode ``i`` equals sub-env ``i`` of a 16-env RecallVectorEnv reset
    with the same seed). The observation shows the sequence up to the first answer (sequence) or its
    first token (stream).

    ## Episode End

    Terminated when every answer is written (sequence) or the last token is reached (stream); never
    truncated. ``info`` holds ``success`` (all answers right, once the episode ends), ``accuracy``
    (correct answers / answers) and ``level`` (ladder index).

    ## Arguments

    - ``family``: ``"copy"``, ``"repeat_copy"``, ``"associative"`` or ``"needle"`` (set by each
      registered id: ``mindgym/Copy-v0``, ``RepeatCopy-v0``, ``AssociativeRecall-v0``, ``Needle-v0``).
    - ``obs_mode``: ``"sequence"`` (default) or ``"stream"``.
    - ``level`` / ``levels``: starting level (index, name, level or field mapping) and ladder (default:
      the family's documented one). A level set later must fit the spaces the ladder sized.
    - ``render_mode``: ``"ansi"`` (the text written so far).

    ```python
    >>> import envs, gymnasium as gym
    >>> env = gym.make("mindgym/Copy-v0", obs_mode="sequence", level="len8-v8")
    >>> vec = gym.make_vec("mindgym/AssociativeRecall-v0", num_envs=4, vectorization_mode="sync",
    ...                    obs_mode="stream")
    ```
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        family: str,
        obs_mode: str = "sequence",
        level: LevelLike = 0,
        levels: Sequence[Any] | None = None,
        render_mode: str | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"Unknown render_mode {render_mode!r}; use None or 'ansi'.")
        self.task = RecallTask(family, levels=levels, level=level)
        self.obs_mode = obs_mode
        self.observation_space, self.action_space = recall_spaces(self.task, obs_mode)
        self.render_mode = render_mode
        self._action_tokens = self.task.action_token_ids
        self._generator = torch.Generator()
        self._seeded = False
        self._done = True
        self._block: list[tuple[np.ndarray, list[int]]] = []
        self._block_level = -1

    def set_level(self, level: LevelLike) -> None:
        """Difficulty for the next episode (index, name, level object or field mapping)."""
        self.task.set_level(level)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seed = check_reset_arguments("RecallEnv", seed, options)
        super().reset(seed=seed)
        if seed is not None:
            self._generator.manual_seed(seed)
            self._block = []
        elif not self._seeded:
            self._generator.manual_seed(int(self.np_random.integers(2**63)))
        self._seeded = True
        self._target, answers = self._next_episode()
        self._level_index = self.task.level_index
        self._length, self._num_answers = len(self._target), len(answers)
        self._answers = [*answers, self._length]
        self._written = self._target.copy()
        self._is_answer = np.zeros(self._length, dtype=bool)
        self._is_answer[self._answers[:-1]] = True
        self._k = self._correct = self._t = 0
        self._pos = self._answers[0]
        self._tokens = np.full(self.task.max_length, PAD, dtype=np.int64)
        self._tokens[: self._pos] = self._target[: self._pos]
        self._done = False
        return self._observe(), self._info()

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        index = check_discrete_action(action, len(self._action_tokens), "the answer token to write")
        if self._done:
            raise RuntimeError("The episode has ended; call reset() before step().")
        token = self._action_tokens[index]
        reward = 0.0
        if self.obs_mode == "sequence":
            reward = self._write(self._pos, token)
            old, self._pos = self._pos, self._answers[self._k]
            self._tokens[old : self._pos] = self._written[old : self._pos]
            self._done = self._k == self._num_answers
        else:
            if self._is_answer[self._t + 1]:
                reward = self._write(self._t + 1, token)
            self._t += 1
            self._done = self._t == self._length - 1
        return self._observe(), reward, self._done, False, self._info()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        shown = self._pos if self.obs_mode == "sequence" else self._t + 1
        return self.task.describe(self._written[:shown].tolist())

    # ------------------------------------------------------------------ helpers
    def _next_episode(self) -> tuple[np.ndarray, list[int]]:
        """The next episode's tokens and answer positions, from a block generated in one batched call.

        Episode ``i`` after ``reset(seed=s)`` is row ``i`` of the batch that a ``RecallVectorEnv`` with
        ``EPISODE_BLOCK`` sub-envs at the same level draws on its ``reset(seed=s)``.
        """
        if not self._block or self._block_level != self.task.level_index:
            level = self.task.level
            ids = torch.full((EPISODE_BLOCK,), self.task.level_index, dtype=torch.long)
            batch = self.task.generate(ids, self._generator, level.sequence_length, level.num_answers)
            tokens = batch.tokens.numpy()
            self._block = [
                (tokens[i, :length], positions[:count])
                for i, (length, count, positions) in enumerate(
                    zip(batch.length.tolist(), batch.num_answers.tolist(), batch.answer_pos.tolist())
                )
            ][::-1]
            self._block_level = self.task.level_index
        return self._block.pop()

    def _write(self, position: int, token: int) -> float:
        correct = token == self._target[position]
        self._written[position] = token
        self._k += 1
        self._correct += int(correct)
        return float(correct) / self._num_answers

    def _observe(self) -> Any:
        if self.obs_mode == "stream":
            return np.int64(self._written[self._t])
        return {"tokens": self._tokens.copy(), "length": np.array([self._pos], dtype=np.int64)}

    def _info(self) -> dict[str, Any]:
        return {
            "success": self._done and self._correct == self._num_answers,
            "accuracy": self._correct / self._num_answers,
            "level": self._level_index,
        }
