"""TextQualityEnv: the Gymnasium single env of the generation task (``mindgym/TextQuality-v0``).

It draws prompts and keeps levels through the native vector env with one sub-env on the CPU (so single
and batched envs start episodes identically), and steps in plain Python with the judge's state carried
across steps (:class:`~envs.generation.scalar.ScalarTextScore`): the same reward, ~20x faster than a
torch step for a batch of one. Observation: ``{"tokens": (window,), "length": (1,)}``
byte tokens of prompt + text written so far; action: the next byte (Discrete(256)); the episode ends
after the level's continuation length or at the end-of-text byte (``eos_byte``, default 0).
``info`` holds every reward component, ``score``, ``bits_per_byte``, ``word_start_bits``, ``seq_rep_4``,
``success``, ``level``.

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
from envs.generation.scalar import ScalarTextScore
from envs.generation.task import TextLevel, TextQualityTask
from envs.generation.tokens import NUM_BYTES, PAD_ID, decode
from envs.generation.vector import TextQualityVectorEnv


class TextQualityEnv(gym.Env):
    """Write a continuation of a corpus prompt, one byte a step, judged by an independent n-gram scorer.

    ## Description

    A prompt from the corpus (the embedded one by default) is shown; the agent writes the level's
    ``continuation_length`` bytes after it. The reward weighs how fluent the text is under a reference
    byte n-gram model fitted on the training split, how diverse and how little it repeats itself, and
    its length (see :mod:`envs.generation.reward`). Prompts and levels come from a
    :class:`TextQualityVectorEnv` with one sub-env on the CPU; steps run in plain Python
    (:class:`~envs.generation.scalar.ScalarTextScore`), equal to the vector env's to float32 rounding.

    ## Action Space

    ``Discrete(256)``: the next byte. Writing ``eos_byte`` (default 0; None disables it) ends the
    episode without writing it.

    ## Observation Space

    ``Dict(tokens=Box(0, 256, (window,), int64), length=Box((1,), int64))``: byte tokens of the prompt
    and the text written so far, the most recent ``window`` (256) bytes when it overflows, right-padded
    with PAD (256).

    ## Rewards

    The episode score ``S = sum_k weight_k * component_k`` over fluency (under the judge, 1 = as
    predictable as the median held-out human text), word order (the same over the bytes that start a
    word: are the words in an English order?), diversity and repetition (0 while distinct-2 and
    seq-rep-4 stay in the band human text occupies at that length, down to -1 at either extreme),
    length (0, or minus the share left unwritten after an early ``eos_byte``) and, when weighted, batch
    diversity. Sparse (default): ``S`` on the last step, 0 before. ``dense=True``: the change of
    ``S`` with every byte, so both give the same undiscounted return.

    ## Starting State

    A prompt at a uniform random offset in the ``prompt_split`` text; the observation shows its last
    ``min(prompt_length, window)`` bytes.

    ## Episode End

    Terminated after ``continuation_length`` bytes or at ``eos_byte``; never truncated. ``success``: S
    reached the score that ``success_fraction`` (0.95) of held-out human text reaches at the same length
    (see :mod:`envs.generation.calibration`). ``info`` also holds every component,
    ``score``, ``bits_per_byte``, ``word_start_bits``, ``distinct_2``, ``seq_rep_4``, ``bytes_written``
    and ``level``.

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
        self.window = self.vector.window
        self.dense = self.vector.dense
        self.eos_byte = self.vector.config.eos_byte
        self.score = ScalarTextScore(self.task.scorer, self.task.calibration, self.vector.config)
        self.tokens = np.full(self.window, PAD_ID, dtype=np.int64)
        self.length = 0
        self.level_id = 0
        self.prev_score = 0.0
        self.success = False
        self.done = True  # like the vector env: stepping before a reset changes nothing

    def set_level(self, level: LevelLike) -> None:
        """Move to ``level`` (index, name, TextLevel or field mapping); applies at the next reset."""
        self.vector.set_level(level)
        self.task.set_level(level)

    @property
    def bytes_written(self) -> int:
        """Bytes of the continuation written so far in this episode."""
        return self.score.count

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = check_reset_arguments("TextQualityEnv", seed, options)
        super().reset(seed=seed)
        self.vector.reset(seed=seed)  # draws the prompt exactly as a vector env with this seed does
        vector = self.vector
        self.tokens = vector.tokens[0].numpy().copy()
        self.length = int(vector.length[0])
        self.level_id = int(vector.level_ids[0])
        # the judge's context: the prompt's last order-1 bytes, all visible since window >= order
        context = self.tokens[max(self.length - vector.score.context, 0) : self.length]
        self.score.reset(context.tolist(), int(vector.score.target[0]))
        self.prev_score = 0.0
        self.success = False
        self.done = False
        return self._obs(), self._info(self.score.components())

    def step(self, action: Any):
        byte = check_discrete_action(action, NUM_BYTES, "the next byte")  # 0.5 must not become byte 0
        score = self.score
        if self.done:
            return self._obs(), 0.0, False, False, self._info(score.components())
        stop = byte == self.eos_byte
        if not stop:
            score.add(byte)
            if self.length < self.window:
                self.tokens[self.length] = byte
                self.length += 1
            else:
                self.tokens[:-1] = self.tokens[1:]
                self.tokens[-1] = byte
        terminated = stop or score.count >= score.target
        components = score.components()
        total = components["score"]
        reward = total - self.prev_score if self.dense else (total if terminated else 0.0)
        self.prev_score = total
        if terminated:
            self.done = True
            self.success = total >= score.threshold()
        if self.render_mode == "human":
            print(self.render_text())
        return self._obs(), reward, terminated, False, self._info(components)

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.render_text()
        if self.render_mode == "human":
            print(self.render_text())
        return None

    def render_text(self) -> str:
        """The window's text, with the written part after a '|' marker where it is still visible."""
        tokens = self.tokens[: self.length]
        visible_written = min(self.score.count, len(tokens))
        return (
            decode(tokens[: len(tokens) - visible_written].tolist())
            + "|"
            + decode(tokens[len(tokens) - visible_written :].tolist())
        )

    def _obs(self) -> dict[str, np.ndarray]:
        return {"tokens": self.tokens.copy(), "length": np.array([self.length], dtype=np.int64)}

    def _info(self, components: dict[str, Any]) -> dict[str, Any]:
        info = dict(components)
        info["bytes_written"] = self.score.count
        info["success"] = self.success
        info["level"] = self.level_id
        return info
