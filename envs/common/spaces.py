"""Observation spaces shared by the task families."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def sequence_space(max_len: int, vocab_size: int) -> gym.spaces.Dict:
    """The sequence-observation layout: right-padded ``tokens`` (max_len,) and their valid ``length`` (1,)."""
    if max_len < 1 or vocab_size < 2:
        raise ValueError(
            f"sequence_space needs max_len >= 1 and vocab_size >= 2, got {max_len}, {vocab_size}."
        )
    return gym.spaces.Dict(
        {
            "tokens": gym.spaces.Box(0, vocab_size - 1, shape=(max_len,), dtype=np.int64),
            "length": gym.spaces.Box(1, max_len, shape=(1,), dtype=np.int64),
        }
    )
