"""The two-layer agent: a backbone trained supervised from the task's oracle, an engine trained by RL.

    agent = DualAgent(backbone, InferenceEngine.for_backbone(backbone, task.action_token_ids), task)
    for _ in range(1000):
        metrics = agent.train_step(vector_env)     # supervised or RL, as the InterleaveSchedule says
    agent.save("checkpoints/last.pt", extra={"curriculum": curriculum.state_dict()})

The two layers have separate parameter groups, optimisers and schedules: ``supervised_step`` changes only
the backbone, ``rl_step`` only the engine (the backbone is frozen, but gradients still flow *through* it to
the engine's head weights). Each rollout starts from a reset seeded by the agent's own generator, so a run
resumed from ``save``/``load`` takes exactly the steps an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents.backbones.base import Backbone
from agents.engine import InferenceEngine, sample_actions
from agents.training.optimizers import build_optimizer
from agents.training.rl import (
    RL_ALGORITHMS,
    Rollout,
    baseline_advantages,
    discounted_returns,
    masked_mean,
    ppo_clip_loss,
    reinforce_loss,
)
from agents.training.schedules import warmup_cosine
from agents.training.supervised import supervised_loss
from envs.common import SupervisedBatch, Task
from foundation.checkpoint import load_checkpoint, save_checkpoint
from foundation.device import resolve_device
from foundation.seeding import make_generator, rng_state, set_rng_state


@dataclass
class SupervisedConfig:
    """Backbone training: optimiser (``adamw`` or ``mugrokfast``), warm-up + cosine schedule, loss options."""

    optimizer: str = "adamw"
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    total_steps: int = 10_000
    min_lr_ratio: float = 0.1
    batch_size: int = 32
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    bf16: bool = False  # autocast matmuls to bfloat16; memory recurrences stay float32 inside the backbone
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RLConfig:
    """Engine training from env reward: REINFORCE with a baseline or PPO-clip, with optional regularisers."""

    algorithm: str = "reinforce"
    lr: float = 0.03
    warmup_steps: int = 0
    total_steps: int = 10_000
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

    def __post_init__(self) -> None:
        if self.algorithm not in RL_ALGORITHMS:
            raise ValueError(f"RLConfig.algorithm={self.algorithm!r} is unknown; use one of {RL_ALGORITHMS}.")
        if self.rollout_steps < 1 or self.ppo_epochs < 1:
            raise ValueError("RLConfig.rollout_steps and RLConfig.ppo_epochs must be >= 1.")


@dataclass
class InterleaveSchedule:
    """Which kind of step comes next: ``warmup_supervised`` supervised steps, then cycles of
    ``supervised_steps`` supervised steps followed by ``rl_steps`` RL steps (0 disables a kind)."""

    supervised_steps: int = 1
    rl_steps: int = 1
    warmup_supervised: int = 0

    def __post_init__(self) -> None:
        if min(self.supervised_steps, self.rl_steps, self.warmup_supervised) < 0:
            raise ValueError("InterleaveSchedule counts must be >= 0.")
        if self.supervised_steps + self.rl_steps == 0:
            raise ValueError("InterleaveSchedule needs supervised_steps > 0 or rl_steps > 0.")

    def phase(self, step: int) -> str:
        """``"supervised"`` or ``"rl"`` for training step ``step`` (counted from 0)."""
        if step < self.warmup_supervised:
            return "supervised"
        position = (step - self.warmup_supervised) % (self.supervised_steps + self.rl_steps)
        return "supervised" if position < self.supervised_steps else "rl"


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


@torch.no_grad()
def evaluate_policy(
    backbone: Backbone,
    engine: InferenceEngine,
    env: Any,
    seed: int,
    steps: int,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Run ``engine`` over ``backbone`` in ``env`` for ``steps`` steps from ``reset(seed=seed)``.

    Returns the mean over finished episodes of every per-env info value at the step that ended them
    (``score``, ``success``, ``seq_rep_4``, ...) and ``episodes``, the number of finished episodes.
    """
    was_training = backbone.training
    backbone.eval()
    obs, _ = env.reset(seed=seed)
    device = engine.action_token_ids.device
    sums: dict[str, torch.Tensor] = {}
    episodes = torch.zeros((), device=device)
    needs_reset = torch.zeros(env.num_envs, dtype=torch.bool, device=device)
    for _ in range(steps):
        tokens = torch.as_tensor(obs["tokens"]).to(device, torch.long)
        length = torch.as_tensor(obs["length"]).to(device, torch.long)
        dist, _ = engine(backbone, tokens, length)
        obs, _, terminated, truncated, info = env.step(sample_actions(dist, generator))
        ended = torch.as_tensor(terminated, device=device) | torch.as_tensor(truncated, device=device)
        ended = ended & ~needs_reset
        for key, value in info.items():
            value = torch.as_tensor(value, device=device)
            if value.shape == ended.shape and not key.startswith("_"):
                sums[key] = sums.get(key, 0.0) + (value.float() * ended).sum()
        episodes = episodes + ended.sum()
        needs_reset = ended
    backbone.train(was_training)
    count = float(episodes)
    return {"episodes": count, **{k: float(v) / max(count, 1.0) for k, v in sums.items()}}


class DualAgent:
    """Backbone + inference engine with their own optimisers, schedules, RNG streams and step counters."""

    def __init__(
        self,
        backbone: Backbone,
        engine: InferenceEngine,
        task: Task,
        supervised: SupervisedConfig | None = None,
        rl: RLConfig | None = None,
        schedule: InterleaveSchedule | None = None,
        seed: int = 0,
        device: str | torch.device = "auto",
    ):
        if list(engine.action_token_ids.tolist()) != list(task.action_token_ids):
            raise ValueError(
                "The engine acts on different token ids than the task; build it with "
                "InferenceEngine.for_backbone(backbone, task.action_token_ids)."
            )
        if backbone.vocab_size < task.vocab_size:
            raise ValueError(
                f"The backbone embeds {backbone.vocab_size} token ids but the task uses {task.vocab_size}; "
                f"build the backbone with vocab_size >= {task.vocab_size}."
            )
        self.device = resolve_device(device)
        self.backbone = backbone.to(self.device)
        self.engine = engine.to(self.device)
        self.task = task
        self.sup_config = supervised or SupervisedConfig()
        self.rl_config = rl or RLConfig()
        self.schedule = schedule or InterleaveSchedule()
        sup, rlc = self.sup_config, self.rl_config
        self.sup_optimizer = build_optimizer(
            backbone, name=sup.optimizer, lr=sup.lr, weight_decay=sup.weight_decay, **sup.optimizer_kwargs
        )
        self.sup_scheduler = warmup_cosine(
            self.sup_optimizer, sup.warmup_steps, sup.total_steps, sup.min_lr_ratio
        )
        self.rl_optimizer = torch.optim.Adam(engine.param_groups(rlc.lr, rlc.condition_lr_scale))
        self.rl_scheduler = warmup_cosine(
            self.rl_optimizer, rlc.warmup_steps, rlc.total_steps, rlc.min_lr_ratio
        )
        self.generators = {
            "supervised": make_generator(seed, "agent/supervised", self.device),
            "actions": make_generator(seed, "agent/actions", self.device),
            "env_seeds": make_generator(seed, "agent/env_seeds", "cpu"),
        }
        self.counters = {"step": 0, "supervised": 0, "rl": 0}
        self.last_metrics: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ supervised (backbone)
    def supervised_step(self, batch: SupervisedBatch | None = None) -> dict[str, torch.Tensor]:
        """One optimiser step of the backbone on ``batch`` (default: a fresh batch from the task sampler)."""
        cfg = self.sup_config
        if batch is None:
            batch = self.task.sample_batch(
                cfg.batch_size, self.device, generator=self.generators["supervised"]
            )
        batch = batch.to(self.device)
        self.backbone.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            output = self.backbone(batch.tokens, return_state=False)
        loss, metrics = supervised_loss(output, batch, cfg.label_smoothing)
        self.sup_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics["supervised/grad_norm"] = nn.utils.clip_grad_norm_(self.backbone.parameters(), cfg.grad_clip)
        metrics["supervised/lr"] = torch.tensor(self.sup_optimizer.param_groups[0]["lr"])
        self.sup_optimizer.step()
        self.sup_scheduler.step()
        self.counters["supervised"] += 1
        self.last_metrics.update(metrics)
        return metrics

    # ------------------------------------------------------------------ acting
    def act(self, obs: Mapping[str, Any], deterministic: bool = False) -> torch.Tensor:
        """Actions (B,) for a batch of sequence observations (dict of ``tokens`` and ``length``)."""
        tokens, length = self._sequence(obs)
        self.backbone.eval()
        with torch.no_grad():
            dist, _ = self.engine(self.backbone, tokens, length)
        return dist.logits.argmax(-1) if deterministic else sample_actions(dist, self.generators["actions"])

    def _sequence(self, obs: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(obs, Mapping) or "tokens" not in obs or "length" not in obs:
            raise ValueError(
                "The agent acts on sequence observations: a dict with 'tokens' (B, T) and 'length' (B, 1); "
                "make the env with its sequence observation mode."
            )
        tokens, length = torch.as_tensor(obs["tokens"]), torch.as_tensor(obs["length"])
        return tokens.to(self.device, torch.long), length.to(self.device, torch.long).reshape(-1, 1)

    # ------------------------------------------------------------------ RL (engine)
    def collect_rollout(self, env: Any, steps: int | None = None) -> Rollout:
        """Reset ``env`` with a seed from the agent's generator and run the engine's policy for ``steps``."""
        steps = steps or self.rl_config.rollout_steps
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generators["env_seeds"]))
        obs, _ = env.reset(seed=seed)
        needs_reset = torch.zeros(env.num_envs, dtype=torch.bool, device=self.device)
        self.backbone.eval()
        transitions = []
        for _ in range(steps):
            tokens, length = self._sequence(obs)
            with torch.no_grad():
                dist, _ = self.engine(self.backbone, tokens, length)
            actions = sample_actions(dist, self.generators["actions"])
            obs, reward, terminated, truncated, info = env.step(actions)
            done = torch.as_tensor(terminated, device=self.device) | torch.as_tensor(
                truncated, device=self.device
            )
            transitions.append(
                {
                    "tokens": tokens,
                    "length": length,
                    "actions": actions,
                    "log_probs": dist.log_prob(actions),
                    "rewards": torch.as_tensor(reward, device=self.device, dtype=torch.float32),
                    "done": done,
                    "valid": ~needs_reset,
                    "success": torch.as_tensor(info["success"], device=self.device) & done,
                }
            )
            needs_reset = done
        return Rollout.stack(transitions)

    def rl_step(self, env: Any) -> dict[str, torch.Tensor]:
        """Collect a rollout from ``env`` and update the engine (REINFORCE or PPO), backbone frozen."""
        cfg = self.rl_config
        rollout = self.collect_rollout(env)
        returns = discounted_returns(rollout.rewards, rollout.done, cfg.gamma)
        advantages = baseline_advantages(returns, rollout.valid, cfg.normalize_advantages).flatten()
        valid, old_log_probs = rollout.flat("valid"), rollout.flat("log_probs")
        tokens, length, actions = rollout.flat("tokens"), rollout.flat("length"), rollout.flat("actions")
        metrics: dict[str, torch.Tensor] = {}
        with frozen(self.backbone):
            for _ in range(cfg.ppo_epochs if cfg.algorithm == "ppo" else 1):
                self.rl_optimizer.zero_grad(set_to_none=True)
                policy_loss, entropy, clip_fraction = self._accumulate_policy_gradient(
                    tokens, length, actions, old_log_probs, advantages, valid
                )
                if cfg.default_pull:
                    (cfg.default_pull * self.engine.default_pull()).backward()
                metrics["rl/grad_norm"] = nn.utils.clip_grad_norm_(self.engine.parameters(), cfg.grad_clip)
                self.rl_optimizer.step()
        if cfg.algorithm == "ppo":
            metrics["rl/clip_fraction"] = clip_fraction
        self.rl_scheduler.step()
        self.counters["rl"] += 1
        episodes = rollout.done & rollout.valid
        metrics.update(
            {
                "rl/loss": policy_loss.detach(),
                "rl/entropy": entropy.detach(),
                "rl/reward_per_step": masked_mean(rollout.rewards, rollout.valid),
                "rl/return": masked_mean(returns[0], rollout.valid[0]),
                "rl/success_rate": rollout.success.sum() / episodes.sum().clamp_min(1),
                "rl/advantage_mean": masked_mean(advantages, valid),
                "rl/advantage_std": masked_mean(advantages.pow(2), valid).sqrt(),
                "rl/advantage_abs_max": (advantages.abs() * valid).max(),
                "rl/lr": torch.tensor(self.rl_optimizer.param_groups[0]["lr"]),
            }
        )
        self.last_metrics.update(metrics)
        return metrics

    def _accumulate_policy_gradient(
        self,
        tokens: torch.Tensor,
        length: torch.Tensor,
        actions: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Backpropagate the policy loss minus the entropy bonus over minibatches of the rollout (gradients
        accumulate; each piece is normalised by the whole rollout's valid count, so the sum is the full-batch
        loss). Returns the detached policy loss, entropy and PPO clip fraction."""
        cfg = self.rl_config
        count = valid.sum().clamp_min(1)
        size = cfg.minibatch_size or len(actions)
        totals = torch.zeros(3, device=self.device)
        for start in range(0, len(actions), size):
            part = slice(start, start + size)
            dist, _ = self.engine(self.backbone, tokens[part], length[part])
            log_probs = dist.log_prob(actions[part])
            if cfg.algorithm == "ppo":
                policy, clipped = ppo_clip_loss(
                    log_probs, old_log_probs[part], advantages[part], valid[part], cfg.clip_range, count
                )
            else:
                policy = reinforce_loss(log_probs, advantages[part], valid[part], count)
                clipped = torch.zeros((), device=self.device)
            entropy = (dist.entropy() * valid[part]).sum() / count
            (policy - cfg.entropy_coef * entropy).backward()
            totals = totals + torch.stack([policy.detach(), entropy.detach(), clipped])
        return totals[0], totals[1], totals[2]

    def evaluate(self, env: Any, seed: int, steps: int | None = None) -> dict[str, float]:
        """Mean final info values (score, success, ...) of the episodes that end within ``steps`` from a
        reset with ``seed``; samples with the engine's own stream, and leaves training state untouched."""
        generator = make_generator(seed, "agent/evaluate", self.device)
        return evaluate_policy(
            self.backbone, self.engine, env, seed, steps or self.rl_config.rollout_steps, generator
        )

    # ------------------------------------------------------------------ interleaving
    def train_step(self, env: Any = None) -> dict[str, torch.Tensor]:
        """The next step the schedule asks for: supervised on the task's sampler, or RL on ``env``."""
        phase = self.schedule.phase(self.counters["step"])
        if phase == "rl" and env is None:
            raise ValueError(
                "The schedule asks for an RL step: pass the task's vector env to train_step(env)."
            )
        metrics = self.supervised_step() if phase == "supervised" else self.rl_step(env)
        self.counters["step"] += 1
        return metrics

    def metrics(self) -> dict[str, float]:
        """Latest supervised and RL metrics plus engine and backbone values, as floats for a logger."""
        values = {k: float(v) for k, v in self.last_metrics.items()}
        values.update(self.engine.metrics())
        values.update({f"backbone/{k}": v for k, v in self.backbone.metrics().items()})
        values.update({f"counters/{k}": float(v) for k, v in self.counters.items()})
        return values

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Models, both optimisers and schedulers, step counters, the task level and every RNG state."""
        return {
            "backbone": self.backbone.state_dict(),
            "engine": self.engine.state_dict(),
            "sup_optimizer": self.sup_optimizer.state_dict(),
            "sup_scheduler": self.sup_scheduler.state_dict(),
            "rl_optimizer": self.rl_optimizer.state_dict(),
            "rl_scheduler": self.rl_scheduler.state_dict(),
            "counters": dict(self.counters),
            "task_level": self.task.level_index,
            "generators": {name: g.get_state() for name, g in self.generators.items()},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the next step equals the uninterrupted run's."""
        missing = {"backbone", "engine", "sup_optimizer", "rl_optimizer", "counters", "generators"} - set(
            state
        )
        if missing:
            raise ValueError(f"Not a DualAgent checkpoint: missing {sorted(missing)}.")
        self.backbone.load_state_dict(state["backbone"])
        self.engine.load_state_dict(state["engine"])
        self.sup_optimizer.load_state_dict(state["sup_optimizer"])
        self.sup_scheduler.load_state_dict(state["sup_scheduler"])
        self.rl_optimizer.load_state_dict(state["rl_optimizer"])
        self.rl_scheduler.load_state_dict(state["rl_scheduler"])
        self.counters = dict(state["counters"])
        self.task.set_level(state["task_level"])
        for name, generator in self.generators.items():
            generator.set_state(state["generators"][name].cpu())
        set_rng_state(state["rng"])

    def save(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the agent (and ``extra`` plain data, e.g. a curriculum's state) to ``path`` atomically."""
        return save_checkpoint({"agent": self.state_dict(), "extra": dict(extra or {})}, path)

    def load(self, path: str | Path) -> dict[str, Any]:
        """Restore the agent from ``path`` (read with weights_only=True); returns the saved ``extra``."""
        state = load_checkpoint(path)
        if "agent" not in state:
            raise ValueError(
                f"{path} is not a DualAgent checkpoint (no 'agent' entry); pass one from save()."
            )
        self.load_state_dict(state["agent"])
        return state.get("extra", {})
