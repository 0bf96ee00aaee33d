"""Test fixtures: an agent and a model that answer with the family oracle, reading only what they observe."""

import torch

from envs.recall.needle import NeedleLevel
from envs.recall.task import RecallTask

FAMILIES = ["copy", "repeat_copy", "associative", "needle"]
SMALL_NEEDLE = [
    NeedleLevel("n64", 64),
    NeedleLevel("n200-mid", 200, depth=0.5, filler="random", key_digits=6),
]


def small_levels(family: str):
    """Short ladders so env checks stay fast (the default needle ladder reaches 64 KiB)."""
    return SMALL_NEEDLE if family == "needle" else RecallTask(family).default_levels()[:3]


def oracle_action(task: RecallTask, tokens, length) -> int:
    """The action a perfect sequence-mode agent takes after observing ``tokens[:length]``."""
    prefix = [int(t) for t in tokens[: int(length)]]
    return task.action_token_ids.index(task.oracle_next_token(prefix))


class OracleModel:
    """tokens (B, T) -> logits (B, T, V), one-hot on the oracle's answer wherever an answer is defined."""

    def __init__(self, task: RecallTask):
        self.task = task

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*tokens.shape, self.task.vocab_size)
        for b, row in enumerate(tokens.tolist()):
            for t in range(len(row)):
                try:
                    logits[b, t, self.task.oracle_next_token(row[: t + 1])] = 1.0
                except (ValueError, IndexError):
                    continue
        return logits
