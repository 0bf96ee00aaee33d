"""Per-step features of the env's state that a conditioned inference engine reads beside the hidden state.

The conditioned engine (``InferenceEngine(conditioned=True, n_features=F)``) predicts per-step offsets to
its temperature and top-p from the backbone's hidden state; these features give it what the hidden state
may not make explicit, each a (B, F) float tensor computed from the native vector env (``env.unwrapped``),
its observation and the action mask the policy uses:

- **maze** (5): the four legal-move flags (the env's ``action_masks()``) and the number of legal moves / 4
  (a corridor with one way on needs no exploration, a junction may);
- **recall** (copy, repeat-copy, associative, needle) (2): the position in the answer, ``answered /
  num_answers``, and whether the next answer token is the last;
- **text** (feature set v2, 7): the fraction of the continuation written so far and whether the next
  byte is its last (v1's two), then what the text written so far looks like: its seq-rep-n and distinct-n
  (the reward's n's, default 4 and 2), whether its newest n-gram repeats an earlier one (looping now),
  and the judge's bits per byte so far and of the newest byte (/ 8, the bits of a uniform byte). Without
  these the head sees only the hidden state and the position, so it cannot learn "sharpen unless
  looping". All are read from the env's running reward state (``env.score``), on its device, no sync.
  ``for_family("text", version=1)`` gives v1's two features, for engines trained before v2.

    features = for_family("maze")
    engine = InferenceEngine.for_backbone(backbone, ids, conditioned=True, n_features=features.size)
    agent = DualAgent(backbone, engine, task, features=features, mask_invalid=True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from envs.generation.calibration import UNIFORM_BITS

FeatureFn = Callable[[Any, Mapping[str, torch.Tensor], "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class EngineFeatures:
    """A family's feature function and its width: call it as ``features(env.unwrapped, obs, mask)``."""

    family: str
    size: int
    compute: FeatureFn
    version: int = 1

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


def newest_ngram_repeats(score: Any) -> torch.Tensor:
    """(B,) bool: the n-gram ending at each row's newest byte (n = the reward's ``repetition_n``) occurs
    earlier in the same continuation; False while fewer than n bytes are written."""
    tracker, count = score.repetition, score.count
    newest = (count - tracker.n).clamp(0, tracker.keys.shape[1] - 1)
    key = tracker.keys.gather(1, newest[:, None])
    earlier = (tracker.keys == key) & (tracker.columns[None, :] < newest[:, None])
    return earlier.any(dim=1) & (count >= tracker.n)


def text_running_features(
    env: Any, obs: Mapping[str, torch.Tensor], mask: torch.Tensor | None
) -> torch.Tensor:
    """v1's two features, then seq-rep-n, distinct-n, whether the newest n-gram repeats, and the judge's
    bits per byte so far and of the newest byte (both / 8); 0, 1, 0, 0, 0 before the first byte."""
    score = env.score
    raw = score.raw()
    written = score.count > 0
    bits = torch.where(written, raw["bits"], 0.0) / UNIFORM_BITS
    last_bits = torch.where(written, score.last_bits, 0.0) / UNIFORM_BITS
    running = [raw["seq_rep"], raw["distinct"], newest_ngram_repeats(score).float(), bits, last_bits]
    return torch.cat([text_features(env, obs, mask), torch.stack(running, dim=1)], dim=1)


TEXT_FEATURES = {
    1: EngineFeatures("text", 2, text_features, version=1),
    2: EngineFeatures("text", 7, text_running_features, version=2),
}
FAMILIES: dict[str, EngineFeatures] = {
    "maze": EngineFeatures("maze", 5, maze_features),
    "recall": EngineFeatures("recall", 2, recall_features),
    "text": TEXT_FEATURES[max(TEXT_FEATURES)],
}
RECALL_FAMILIES = ("copy", "repeat_copy", "associative", "needle")


def for_family(family: str, version: int | None = None) -> EngineFeatures:
    """The features of ``family``: ``maze``, ``text``/``generation``, ``recall`` or a recall family.

    ``version`` picks an earlier feature set (text: 1 or 2; default the latest), to run an engine trained
    on it: a checkpoint records the width its conditioned head reads, and loading it into an engine of
    another width fails naming both.
    """
    key = "recall" if family in RECALL_FAMILIES else "text" if family == "generation" else family
    if key not in FAMILIES:
        raise ValueError(
            f"No engine features for family {family!r}; use one of {sorted(FAMILIES)} or {RECALL_FAMILIES}."
        )
    if version is None or version == FAMILIES[key].version:
        return FAMILIES[key]
    if key == "text" and version in TEXT_FEATURES:
        return TEXT_FEATURES[version]
    known = sorted(TEXT_FEATURES) if key == "text" else [FAMILIES[key].version]
    raise ValueError(f"No feature set version {version!r} for family {family!r}; its versions are {known}.")
