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

from envs.common.checks import check_discrete_action, check_reset_arguments
from envs.common.task import LevelLike
from envs.generation.corpus import Corpus
from envs.generation.task import TextLevel, TextQualityTask
from envs.generation.tokens import NUM_BYTES, decode
from envs.generation.vector import TextQualityVectorEnv


class TextQualityEnv(gym.Env):
    """Write a continuation of a corpus prompt, one byte a step, judged by an independent n-gram scorer.

    ## Description

    A prompt from the corpus (the embedded one by default) is shown; the agent writes the level's
    ``continuation_length`` bytes after it. The reward weighs how fluent the text is under a reference
    byte n-gram model fitted on the training split, how diverse and how little it repeats itself, and
    its length (see :mod:`envs.generation.reward`). The env runs :class:`TextQualityVectorEnv` with one
    sub-env on the CPU, so single and batched envs share one implementation.

    ## Action Space

    ``Discrete(256)``: the next byte. Writing ``eos_byte`` (default 0; None disables it) ends the
    episode without writing it.

    ## Observation Space

    ``Dict(tokens=Box(0, 256, (window,), int64), length=Box((1,), int64))``: byte tokens of the prompt
    and the text written so far, the most recent ``window`` (256) bytes when it overflows, right-padded
    with PAD (256).

    ## Rewards

    The episode score ``S = sum_k weight_k * component_k`` over fluency (under the judge, 1 = as
    predictable as the median held-out human text), diversity and repetition (0 while distinct-2 and
    seq-rep-4 stay in the band human text occupies at that length, down to -1 at either extreme),
    length (0, or minus the share left unwritten after an early ``eos_byte``) and, when weighted, batch
    diversity. Sparse (default): ``S`` on the last step, 0 before. ``dense=True``: the change of
    ``S`` with every byte, so both give the same undiscounted return.

    ## Starting State

    A prompt at a uniform random offset in the ``prompt_split`` text; the observation shows its last
    ``min(prompt_length, window)`` bytes.

    ## Episode End

    Terminated after ``continuation_length`` bytes or at ``eos_byte``; never truncated. ``success``: S
    reached the score that ``success_fraction`` (0.9) of held-out human text reaches at the same length
    (see :mod:`envs.generation.calibration`). ``info`` also holds every component,
    ``score``, ``bits_per_byte``, ``distinct_2``, ``seq_rep_4``, ``bytes_written`` and ``level``.

    ## Arguments

    - ``level`` / ``levels``: starting level (index, name, TextLevel or field mapping) and ladder
      (default: p64-c16 to p16-c256, prompt and continuation bytes).
    - ``corpus``: a Corpus or a text file / folder path (default: the embedded corpus).
    - ``render_mode``: ``"ansi"`` or ``"human"`` (prompt, ``|``, continuation).
    - Other keywords go to :class:`TextQualityVectorEnv`: ``dense``, and the task options
      ``reward_weights``, ``window``, ``order``, ``diversity_n``, ``repetition_n``,
      ``success_fraction``, ``eos_byte``, ``prompt_split``, ``cache_dir`` (see TextQualityTask).

    ```python
    >>> import envs, gymnasium as gym
    >>> env = gym.make("mindgym/TextQuality-v0", level="p64-c32", dense=True)
    >>> vec = gym.make_vec("mindgym/TextQuality-v0", num_envs=4, vectorization_mode="sync")
    ```
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
            1, device="cpu", level=level, levels=levels, autoreset_mode="disabled", corpus=corpus, **kwargs
        )
        self.task: TextQualityTask = self.vector.task
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space

    def set_level(self, level: LevelLike) -> None:
        """Move to ``level`` (index, name, TextLevel or field mapping); applies at the next reset."""
        self.vector.set_level(level)
        self.task.set_level(level)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = check_reset_arguments("TextQualityEnv", seed, options)
        super().reset(seed=seed)
        obs, info = self.vector.reset(seed=seed)
        return self._obs(obs), self._info(info)

    def step(self, action: Any):
        byte = check_discrete_action(action, NUM_BYTES, "the next byte")  # 0.5 must not become byte 0
        obs, reward, terminated, truncated, info = self.vector.step(np.asarray([byte], dtype=np.int64))
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
