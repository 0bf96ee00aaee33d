"""Reward-driven training of the inference engine, read top to bottom like a single-file PPO.

One :meth:`EngineTrainer.update` is:

1. **collect**: the one rollout function runs the engine's sampling policy over the frozen backbone for
   ``rollout_steps`` steps of the vector env, keeping every transition;
2. **returns and advantages**: reward-to-go cut at episode ends, minus a leave-one-out baseline over the
   sub-envs at the same step (or, with ``group_size`` K, over the other K-1 sub-envs of its group, which
   share its prompt: the per-prompt baseline of RLOO / GRPO), normalised; with ``floor_key`` the rewards
   first gain a Lagrange multiplier times an episode-end value the engine must keep above ``floor``;
3. **loss**: for ``ppo_epochs`` epochs (1 for REINFORCE), over minibatches of the rollout, the clipped
   surrogate (PPO) or the score-function loss (REINFORCE) minus an entropy bonus, plus an optional pull
   back towards default decoding; gradients flow *through* the frozen backbone to the engine's layer
   and head weights;
4. **step**: clip the gradient norm, step the optimiser (and once per update, its schedule).

Everything is batched tensor code over (steps, envs) on the rollout's device; the only Python loops run
over time steps (the return recursion) and minibatches.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.distributions import Categorical

from agents.backbones.base import Backbone
from agents.engine import InferenceEngine
from agents.rollout import BackbonePolicy, Transitions, rollout
from agents.training.chains import chain_ends, read_chained
from agents.training.schedules import warmup_cosine

RL_ALGORITHMS = ("reinforce", "ppo")


@dataclass
class RLConfig:
    """Engine training from env reward: REINFORCE with a baseline or PPO-clip, with optional regularisers.

    ``total_steps`` (the length of the rate schedule) defaults to the run's ``trainer.steps`` when None.
    """

    algorithm: str = "reinforce"
    lr: float = 0.03
    warmup_steps: int = 0
    total_steps: int | None = None
    min_lr_ratio: float = 1.0  # 1.0: constant rate after warm-up
    condition_lr_scale: float = 0.1  # the conditioned head's rate relative to ``lr``
    rollout_steps: int = 32  # steps per rollout; make it at least the episode length
    gamma: float = 1.0
    normalize_advantages: bool = True
    entropy_coef: float = 0.0
    default_pull: float = 0.0  # weight of the squared distance of the engine from default decoding
    minibatch_size: int | None = None  # rows of the rollout per forward/backward; None: all at once
    clip_range: float = 0.2  # PPO
    ppo_epochs: int = 4  # PPO
    grad_clip: float = 1.0
    # sub-envs per baseline group: 1 compares each return with all other sub-envs at its step; K > 1 only
    # with the K sub-envs of a group sharing their start (TextQualityVectorEnv(prompt_group_size=K))
    group_size: int = 1
    # a floor on an episode-end value of the env (e.g. "fluency"): maximise the reward subject to its mean
    # staying >= ``floor``, by a Lagrange multiplier that grows while the rollouts fall short (None: off)
    floor_key: str | None = None
    floor: float = 0.0
    floor_lr: float = 10.0  # the multiplier's step per unit of shortfall per update

    def __post_init__(self) -> None:
        if self.algorithm not in RL_ALGORITHMS:
            raise ValueError(f"RLConfig.algorithm={self.algorithm!r} is unknown; use one of {RL_ALGORITHMS}.")
        if self.rollout_steps < 1 or self.ppo_epochs < 1:
            raise ValueError("RLConfig.rollout_steps and RLConfig.ppo_epochs must be >= 1.")
        if self.group_size < 1:
            raise ValueError(f"RLConfig.group_size must be >= 1 (1: no groups), got {self.group_size}.")
        if self.floor_lr <= 0 or not math.isfinite(self.floor) or not math.isfinite(self.floor_lr):
            raise ValueError(
                f"RLConfig.floor ({self.floor}) must be finite and RLConfig.floor_lr ({self.floor_lr}) > 0."
            )


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Switch off parameter gradients (and dropout) of ``module``; gradients still flow through it."""
    flags = [p.requires_grad for p in module.parameters()]
    was_training = module.training
    module.requires_grad_(False).eval()
    try:
        yield
    finally:
        for param, flag in zip(module.parameters(), flags):
            param.requires_grad_(flag)
        module.train(was_training)


class EngineTrainer:
    """The engine's optimiser and rate schedule, and the policy-gradient update from env reward.

    ``mask_invalid``: rollouts and the update give the env's illegal actions no probability (as the
    evaluation policy does); ``features``: the per-step feature function a conditioned engine reads
    (:mod:`agents.engine_features`), kept with every transition so the update sees what the rollout saw;
    ``stream``: the env appends each action's token to the observation (text generation), so the policy
    streams the backbone one token a step (:class:`agents.rollout.BackbonePolicy`) and the update reads
    each chain of steps in one pass (:meth:`_backward`).
    """

    def __init__(
        self,
        engine: InferenceEngine,
        backbone: Backbone,
        config: RLConfig,
        total_steps: int,
        mask_invalid: bool = False,
        features: Callable[..., torch.Tensor] | None = None,
        stream: bool = False,
    ):
        self.engine, self.backbone, self.config = engine, backbone, config
        self.mask_invalid, self.features, self.stream = mask_invalid, features, stream
        self.optimizer = torch.optim.Adam(engine.param_groups(config.lr, config.condition_lr_scale))
        self.floor_multiplier = torch.zeros(())  # the Lagrange multiplier of RLConfig.floor_key
        length = config.total_steps or total_steps
        self.scheduler = warmup_cosine(
            self.optimizer, config.warmup_steps, max(length, config.warmup_steps + 1), config.min_lr_ratio
        )

    def policy(self, generator: torch.Generator | None, greedy: bool = False) -> BackbonePolicy:
        """The engine's policy over the backbone with this trainer's action mask and features: what its
        rollouts sample from, and what :meth:`agents.dual.DualAgent.policy` evaluates."""
        return BackbonePolicy(
            self.backbone,
            self.engine,
            greedy=greedy,
            generator=generator,
            mask_invalid=self.mask_invalid,
            features=self.features,
            stream=self.stream,
        )

    def update(self, env: Any, seed: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Collect one rollout from ``env`` (reset with ``seed``) and update the engine from its reward."""
        cfg = self.config
        check_groups(env, cfg.group_size)
        # 1. collect
        with frozen(self.backbone):
            policy = self.policy(generator)
            collected = rollout(env, policy, seed=seed, steps=cfg.rollout_steps, keep_transitions=True)
        batch = collected.transitions
        # 2. returns and advantages (with a floor: of the Lagrangian, reward + multiplier * floored value)
        rewards, floor_metrics = self._floor_rewards(batch, collected.final)
        returns = discounted_returns(rewards, batch.done, cfg.gamma)
        advantages = baseline_advantages(returns, batch.valid, cfg.normalize_advantages, cfg.group_size)
        advantages = advantages.flatten()
        # 3. loss, 4. step
        parts, ends = self._minibatches(batch)  # the same minibatches in every epoch
        with frozen(self.backbone):
            for _ in range(cfg.ppo_epochs if cfg.algorithm == "ppo" else 1):
                self.optimizer.zero_grad(set_to_none=True)
                policy_loss, entropy, clip_fraction = self._backward(batch, advantages, parts, ends)
                if cfg.default_pull:
                    (cfg.default_pull * self.engine.default_pull()).backward()
                grad_norm = nn.utils.clip_grad_norm_(self.engine.parameters(), cfg.grad_clip)
                self.optimizer.step()
        self.scheduler.step()
        valid = batch.flat("valid")
        episodes = batch.done & batch.valid
        metrics = {
            "rl/loss": policy_loss,
            "rl/entropy": entropy,
            "rl/grad_norm": grad_norm,
            "rl/reward_per_step": masked_mean(batch.rewards, batch.valid),
            "rl/return": masked_mean(returns[0], batch.valid[0]),
            "rl/success_rate": batch.success.sum() / episodes.sum().clamp_min(1),
            "rl/advantage_mean": masked_mean(advantages, valid),
            "rl/advantage_std": masked_mean(advantages.pow(2), valid).sqrt(),
            "rl/advantage_abs_max": (advantages.abs() * valid).max(),
            "rl/lr": torch.tensor(self.optimizer.param_groups[0]["lr"]),
        }
        if cfg.algorithm == "ppo":
            metrics["rl/clip_fraction"] = clip_fraction
        return {**metrics, **floor_metrics}

    def _floor_rewards(
        self, batch: Transitions, final: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The rewards the update climbs: the env's, plus, with ``RLConfig.floor_key``, the multiplier
        times each episode's final value of that key, paid at its last step; then one projected dual step
        (the multiplier grows by ``floor_lr`` times the rollouts' shortfall below ``floor``, shrinks by
        their excess, and stays >= 0).

        This is constrained RL by Lagrangian relaxation (RCPO, Tessler et al. 2019): while the rollouts
        hold the value above the floor the multiplier falls to 0 and the update climbs the reward alone;
        a policy that buys reward with that value is pushed back. It needs each sub-env to play exactly
        one episode a rollout (the value of later episodes is not reported), so it refuses other rollouts.
        """
        cfg = self.config
        if cfg.floor_key is None:
            return batch.rewards, {}
        if cfg.floor_key not in final:
            raise ValueError(
                f"RLConfig.floor_key={cfg.floor_key!r} (engine.rl.floor_key) is not a value this env reports "
                f"at an episode's end; it reports {sorted(final)}."
            )
        ends = batch.done & batch.valid
        if not bool((ends.sum(dim=0) == 1).all()):
            raise ValueError(
                "RLConfig.floor_key needs each sub-env to finish exactly one episode a rollout: set "
                f"RLConfig.rollout_steps ({cfg.rollout_steps}; engine.rl.rollout_steps) to the episode "
                "length + 1."
            )
        values = final[cfg.floor_key].to(batch.rewards.dtype)
        multiplier = self.floor_multiplier.to(values.device)
        rewards = batch.rewards + ends.to(values.dtype) * (multiplier * values)[None]
        mean = values.mean()
        self.floor_multiplier = (multiplier - cfg.floor_lr * (mean - cfg.floor)).clamp_min(0.0)
        return rewards, {"rl/floor_value": mean, "rl/floor_multiplier": multiplier}

    def _minibatches(self, batch: Transitions) -> tuple[list[Any], torch.Tensor | None]:
        """The rollout's flat transitions in minibatches, and for a streaming trainer (``stream``) the flat
        index of each transition's chain end (:mod:`agents.training.chains`): its minibatches then hold up to
        ``minibatch_size`` whole chains."""
        actions = batch.flat("actions")
        size = self.config.minibatch_size or len(actions)
        if not self.stream:
            return [slice(start, start + size) for start in range(0, len(actions), size)], None
        envs = batch.tokens.shape[1]
        ends = chain_ends(batch.tokens, batch.length) * envs + torch.arange(envs, device=actions.device)
        ends = ends.flatten()
        chains = torch.unique(ends)
        parts = [torch.isin(ends, chains[i : i + size]).nonzero()[:, 0] for i in range(0, len(chains), size)]
        return parts, ends

    def _backward(
        self, batch: Transitions, advantages: torch.Tensor, parts: list[Any], ends: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Backpropagate the policy loss minus the entropy bonus over minibatches ``parts`` (gradients
        accumulate; each piece is normalised by the whole rollout's valid count, so the sum is the
        full-batch loss). Returns the detached policy loss, entropy and PPO clip fraction.

        With chain ends (a streaming trainer) each chain of steps whose contexts extend one another is read
        in one backbone pass (the same outputs for a causal backbone)."""
        cfg = self.config
        tokens, length, actions = batch.flat("tokens"), batch.flat("length"), batch.flat("actions")
        old_log_probs, valid = batch.flat("log_probs"), batch.flat("valid")
        mask, features = batch.flat("mask"), batch.flat("features")
        count = valid.sum().clamp_min(1)
        totals = torch.zeros(3, device=actions.device)
        read = functools.partial(self.engine.read, self.backbone)
        for part in parts:
            part_features = None if features is None else features[part]
            if ends is not None:
                output = read_chained(read, tokens, length, ends, part)
                first = torch.zeros(len(part), dtype=torch.long, device=actions.device)
                dist = self.engine.distribution(
                    output, tokens[part], length[part], self.backbone.output_logits, first, part_features
                )
            else:
                dist, _ = self.engine(self.backbone, tokens[part], length[part], features=part_features)
            if mask is not None:  # the rollout's policy gave illegal actions no probability
                dist = Categorical(logits=dist.logits.masked_fill(~mask[part], float("-inf")))
            log_probs = dist.log_prob(actions[part])
            if cfg.algorithm == "ppo":
                policy, clipped = ppo_clip_loss(
                    log_probs, old_log_probs[part], advantages[part], valid[part], cfg.clip_range, count
                )
            else:
                policy = reinforce_loss(log_probs, advantages[part], valid[part], count)
                clipped = torch.zeros((), device=actions.device)
            entropy = (dist.entropy() * valid[part]).sum() / count
            (policy - cfg.entropy_coef * entropy).backward()
            totals = totals + torch.stack([policy.detach(), entropy.detach(), clipped])
        return totals[0], totals[1], totals[2]

    def state_dict(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        if self.config.floor_key is not None:
            state["floor_multiplier"] = self.floor_multiplier.detach().cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "floor_multiplier" in state:
            self.floor_multiplier = state["floor_multiplier"].clone()


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


def check_groups(env: Any, group_size: int) -> None:
    """Refuse ``RLConfig.group_size`` > 1 on an env whose sub-envs do not share starts in groups of that
    size (a group baseline over unrelated episodes removes nothing), or whose sub-envs it does not divide."""
    if group_size == 1:
        return
    shared = getattr(env.unwrapped, "prompt_group_size", 1)
    if shared != group_size:
        raise ValueError(
            f"RLConfig.group_size={group_size} compares each return with the other sub-envs of its group, "
            f"but the env's sub-envs share prompts in groups of {shared}: build the env with "
            f"prompt_group_size={group_size} (TextQualityVectorEnv) or set engine.rl.group_size={shared}."
        )


def baseline_advantages(
    returns: torch.Tensor, valid: torch.Tensor, normalize: bool = True, group_size: int = 1
) -> torch.Tensor:
    """Returns minus a per-time-step baseline: the mean return of the *other* valid sub-envs at that step,
    within consecutive groups of ``group_size`` sub-envs (1: a sample per prompt, so over all sub-envs).

    The leave-one-out mean keeps the estimator unbiased. With groups of sub-envs that share a prompt, the
    baseline also removes what the prompt alone adds to every return of its group, so the advantage is
    what the sampled text did. ``normalize`` scales advantages to unit std over the valid entries. Invalid
    entries are zero.
    """
    steps, envs = returns.shape
    if group_size < 1 or envs % group_size:
        raise ValueError(f"group_size={group_size} must be >= 1 and divide the rollout's {envs} sub-envs.")
    size = envs if group_size == 1 else group_size  # one sample per prompt: compare with every sub-env
    grouped = returns.reshape(steps, envs // size, size)
    weights = valid.reshape(grouped.shape).to(returns.dtype)
    count = weights.sum(dim=2, keepdim=True)
    total = (grouped * weights).sum(dim=2, keepdim=True)
    others = count - weights
    baseline = (total - grouped * weights) / others.clamp_min(1.0)
    if group_size > 1:  # a sample without a valid sibling has no baseline of its prompt: no advantage
        weights = weights * (others > 0)
    advantages = ((grouped - baseline) * weights).reshape(steps, envs)
    weights = weights.reshape(steps, envs)
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
