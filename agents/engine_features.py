"""Per-step features of the env's state that a conditioned inference engine reads beside the hidden state.

The conditioned engine (``InferenceEngine(conditioned=True, n_features=F)``) predicts per-step offsets to
its temperature and top-p from the backbone's hidden state; these features give it what the hidden state
may not make explicit, each a (B, F) float tensor computed from the native vector env (``env.unwrapped``),
its observation and the action mask the policy uses:

- **maze** (5): the four legal-move flags (the env's ``action_masks()``) and the number of legal moves / 4
  (a corridor with one way on needs no exploration, a junction may);
- **recall** (copy, repeat-copy, associative, needle) (2): the position in the answer, ``answered /
  num_answers``, and whether the next answer token is the last;
- **text** (2): the fraction of the continuation written so far, and whether the next byte is its last.

    features = for_family("maze")
    engine = InferenceEngine.for_backbone(backbone, ids, conditioned=True, n_features=features.size)
    agent = DualAgent(backbone, engine, task, features=features, mask_invalid=True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

FeatureFn = Callable[[Any, Mapping[str, torch.Tensor], "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class EngineFeatures:
    """A family's feature function and its width: call it as ``features(env.unwrapped, obs, mask)``."""

    family: str
    size: int
    compute: FeatureFn

    def __call__(self, env: Any, obs: Mapping[str, torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
        out = self.compute(env, obs, mask)
        if out.shape != (env.num_envs, self.size):
            raise ValueError(
                f"{self.family} engine features have shape {tuple(out.shape)}, "
                f"expected ({env.num_envs}, {self.size})."
            )
        return out.float()


def maze_features(env: Any, obs: Mapping[str, torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
    """Legal-move flags (4) and the share of moves that are legal."""
    legal = torch.as_tensor(env.action_masks() if mask is None else mask, device=env.device).float()
    return torch.cat([legal, legal.mean(dim=1, keepdim=True)], dim=1)


def recall_features(env: Any, obs: Mapping[str, torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
    """Position in the answer (answers written / answers due) and whether the next answer is the last."""
    due = env.num_answers.clamp(min=1).float()
    answered = env.answered.float().clamp(max=due)
    return torch.stack([answered / due, (answered >= due - 1).float()], dim=1)


def text_features(env: Any, obs: Mapping[str, torch.Tensor], mask: torch.Tensor | None) -> torch.Tensor:
    """Fraction of the continuation written and whether the next byte is its last."""
    target = env.score.target.clamp(min=1).float()
    written = env.score.count.float().clamp(max=target)
    return torch.stack([written / target, (written >= target - 1).float()], dim=1)


FAMILIES: dict[str, EngineFeatures] = {
    "maze": EngineFeatures("maze", 5, maze_features),
    "recall": EngineFeatures("recall", 2, recall_features),
    "text": EngineFeatures("text", 2, text_features),
}
RECALL_FAMILIES = ("copy", "repeat_copy", "associative", "needle")


def for_family(family: str) -> EngineFeatures:
    """The features of ``family``: ``maze``, ``text``/``generation``, ``recall`` or a recall family."""
    key = "recall" if family in RECALL_FAMILIES else "text" if family == "generation" else family
    if key not in FAMILIES:
        raise ValueError(
            f"No engine features for family {family!r}; use one of {sorted(FAMILIES)} or {RECALL_FAMILIES}."
        )
    return FAMILIES[key]
