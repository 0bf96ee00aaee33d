"""TextQualityEnv: the Gymnasium single env of the generation task (``mindgym/TextQuality-v0``).

It runs the native vector env with one sub-env on the CPU, so the single and batched envs share one
implementation of prompts, windows and reward. Observation: ``{"tokens": (window,), "length": (1,)}``
byte tokens of prompt + text written so far; action: the next byte (Discrete(256)); the episode ends
after the level's continuation length or at the end-of-text byte (``eos_byte``, default 0).
``info`` holds every reward component, ``score``, ``bits_per_byte``, ``seq_rep_4``, ``success``, ``level``.

    import envs, gymnasium
    env = gymnasium.make("mindgym/TextQuality-v0", level="p64-c32", dense=True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.common.task import LevelLike
from envs.generation.corpus import Corpus
from envs.generation.task import TextLevel, TextQualityTask
from envs.generation.tokens import decode
from envs.generation.vector import TextQualityVectorEnv


class TextQualityEnv(gym.Env):
    """Write a continuation of a corpus prompt, one byte a step, judged by the reference n-gram scorer.

    Keyword arguments other than these (``dense``, ``reward_weights``, ``window``, ``order``,
    ``diversity_n``, ``repetition_n``, ``success_fraction``, ``eos_byte``, ``prompt_split``, ``cache_dir``)
    go to :class:`TextQualityVectorEnv`.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"], "render_fps": 30}

    def __init__(
        self,
        level: LevelLike = 0,
        levels: Sequence[TextLevel | Mapping] | None = None,
        corpus: Corpus | str | Path | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"Unknown render_mode {render_mode!r}; use one of {self.metadata['render_modes']}."
            )
        self.render_mode = render_mode
        self.vector = TextQualityVectorEnv(
            1, "cpu", level, levels, "disabled", numpy=False, corpus=corpus, **kwargs
        )
        self.task: TextQualityTask = self.vector.task
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space

    def set_level(self, level: LevelLike) -> None:
        """Move to ``level`` (index, name, TextLevel or field mapping); applies at the next reset."""
        self.vector.set_level(level)
        self.task.set_level(level)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options:
            raise ValueError(
                f"Unknown reset option(s) {sorted(options)}; TextQualityEnv takes none. "
                "Set difficulty with env.unwrapped.set_level(...)."
            )
        obs, info = self.vector.reset(seed=seed)
        return self._obs(obs), self._info(info)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.vector.step(np.asarray([action], dtype=np.int64))
        if self.render_mode == "human":
            print(self.render_text())
        return self._obs(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(info)

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.render_text()
        if self.render_mode == "human":
            print(self.render_text())
        return None

    def render_text(self) -> str:
        """The window's text, with the written part after a '|' marker where it is still visible."""
        tokens = self.vector.tokens[0, : int(self.vector.length[0])]
        written = int(self.vector.score.count[0])
        visible_written = min(written, len(tokens))
        return (
            decode(tokens[: len(tokens) - visible_written])
            + "|"
            + decode(tokens[len(tokens) - visible_written :])
        )

    def _obs(self, obs: dict) -> dict[str, np.ndarray]:
        return {key: value[0].numpy() for key, value in obs.items()}

    @staticmethod
    def _info(info: dict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in info.items():
            item = value[0].item()
            out[key] = bool(item) if key == "success" else item
        return out
