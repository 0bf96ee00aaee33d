"""Policy-gradient pieces for the inference engine: rollouts, returns, baselines, REINFORCE and PPO-clip.

Everything is batched tensor code over (steps, envs) on the rollout's device; the only Python loop runs
over time steps (the return recursion), never over sub-envs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

RL_ALGORITHMS = ("reinforce", "ppo")


@dataclass
class Rollout:
    """``steps`` transitions of ``num_envs`` sub-envs, stacked as (S, B, ...).

    tokens/length: the sequence observation each action was taken in.
    valid:         False for the step right after an episode ended (a NEXT_STEP reset; its action is ignored).
    done:          the step ended its episode (terminated or truncated).
    """

    tokens: torch.Tensor
    length: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    rewards: torch.Tensor
    done: torch.Tensor
    valid: torch.Tensor
    success: torch.Tensor

    def flat(self, name: str) -> torch.Tensor:
        """Field ``name`` with its (S, B) dims merged into one batch dim."""
        return getattr(self, name).flatten(0, 1)

    @classmethod
    def stack(cls, steps: list[dict[str, torch.Tensor]]) -> Rollout:
        return cls(**{f.name: torch.stack([s[f.name] for s in steps]) for f in fields(cls)})


def discounted_returns(rewards: torch.Tensor, done: torch.Tensor, gamma: float) -> torch.Tensor:
    """Reward-to-go G_s = r_s + gamma * G_{s+1}, cut at episode ends; (S, B) in, (S, B) out, no bootstrap."""
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for s in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[s] + gamma * running * (~done[s]).to(rewards.dtype)
        returns[s] = running
    return returns


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def baseline_advantages(returns: torch.Tensor, valid: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Returns minus a per-time-step baseline: the mean return of the *other* valid sub-envs at that step.

    The leave-one-out mean keeps the estimator unbiased. ``normalize`` scales advantages to unit std over
    the valid entries. Invalid entries are zero.
    """
    weights = valid.to(returns.dtype)
    count = weights.sum(dim=1, keepdim=True)
    total = (returns * weights).sum(dim=1, keepdim=True)
    baseline = (total - returns * weights) / (count - weights).clamp_min(1.0)
    advantages = (returns - baseline) * weights
    if normalize:
        mean = masked_mean(advantages, valid)
        std = masked_mean((advantages - mean).pow(2), valid).sqrt()
        advantages = (advantages - mean) / (std + 1e-8) * weights
    return advantages


def reinforce_loss(
    log_probs: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    count: torch.Tensor | None = None,
) -> torch.Tensor:
    """REINFORCE with a baseline: -E[A * log pi(a)] over valid steps.

    ``count`` replaces the number of valid steps as the divisor (to sum minibatches to a full-batch mean).
    """
    return -_weighted_mean(advantages.detach() * log_probs, valid, count)


def _weighted_mean(values: torch.Tensor, mask: torch.Tensor, count: torch.Tensor | None) -> torch.Tensor:
    if count is None:
        return masked_mean(values, mask)
    return (values * mask.to(values.dtype)).sum() / count


def ppo_clip_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    clip_range: float,
    count: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (negated, to minimise) and the fraction of valid steps where the clip bit;
    ``count`` as in :func:`reinforce_loss`."""
    ratio = (log_probs - old_log_probs.detach()).exp()
    advantages = advantages.detach()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * advantages
    loss = -_weighted_mean(torch.minimum(unclipped, clipped), valid, count)
    clip_fraction = _weighted_mean(((ratio - 1.0).abs() > clip_range).float(), valid, count)
    return loss, clip_fraction.detach()
