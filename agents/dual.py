"""The two-layer agent: a backbone trained supervised from the task's oracle, an engine trained by RL.

    agent = DualAgent(backbone, InferenceEngine.for_backbone(backbone, task.action_token_ids), task)
    for _ in range(1000):
        step = agent.train_step(sampler, vector_env)   # supervised or RL, as the InterleaveSchedule says
    agent.save("checkpoints/last.pt")

``DualAgent`` only orchestrates the two layers: which kind of step comes next, the random streams and
the step counters. The supervised step lives in :class:`agents.training.supervised.SupervisedTrainer`,
the RL update in :class:`agents.training.rl.EngineTrainer`, episodes in :func:`agents.rollout.rollout`.
A supervised step changes only the backbone, an RL step only the engine (the backbone is frozen, but
gradients still flow *through* it to the engine's head weights). Each rollout starts from a reset seeded
by the agent's own generator, so a run resumed from ``save``/``load`` takes exactly the steps an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from agents.backbones.base import Backbone
from agents.engine import InferenceEngine
from agents.rollout import BackbonePolicy, rollout, sequence
from agents.training.rl import EngineTrainer, RLConfig
from agents.training.supervised import SupervisedConfig, SupervisedTrainer
from envs.common import SupervisedBatch, Task
from foundation import (
    load_checkpoint,
    make_generator,
    resolve_device,
    restore_generator,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

__all__ = ["AgentStep", "DualAgent", "InterleaveSchedule", "RLConfig", "SupervisedConfig"]


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


class BatchSource(Protocol):
    """Anything with ``Task.sample_batch``'s signature: a Task or a curriculum sampler over one."""

    def sample_batch(
        self, batch_size: int, device: Any = None, generator: torch.Generator | None = None
    ) -> SupervisedBatch: ...


@dataclass
class AgentStep:
    """What one training step did: its kind, its metrics (tensors, not synced) and the work it took."""

    phase: str
    metrics: dict[str, torch.Tensor]
    tokens: int = 0
    env_steps: int = 0
    batch: SupervisedBatch | None = field(default=None, repr=False)


class DualAgent:
    """Backbone + inference engine with their own trainers, the interleave schedule, RNG streams and
    step counters. ``train_step`` is the one front door the runners call.

    ``mask_invalid``, ``features`` and ``stream`` (see :class:`agents.training.rl.EngineTrainer`) apply
    to the RL rollouts and to :meth:`policy`."""

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
        total_steps: int = 10_000,
        mask_invalid: bool = False,
        features: Any = None,
        stream: bool = False,
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
        self.schedule = schedule or InterleaveSchedule()
        self.supervised = SupervisedTrainer(self.backbone, supervised or SupervisedConfig(), total_steps)
        if getattr(engine, "n_features", 0) and features is None:
            raise ValueError(
                f"The engine reads {engine.n_features} features a step: pass features= (a function from "
                "agents.engine_features.for_family) or build the engine with n_features=0."
            )
        self.rl = EngineTrainer(
            self.engine, self.backbone, rl or RLConfig(), total_steps, mask_invalid, features, stream
        )
        self.generators = {
            "supervised": make_generator(seed, "agent/supervised", self.device),
            "actions": make_generator(seed, "agent/actions", self.device),
            "env_seeds": make_generator(seed, "agent/env_seeds", "cpu"),
        }
        self.counters = {"step": 0, "supervised": 0, "rl": 0}
        self.last_metrics: dict[str, torch.Tensor] = {}

    @property
    def sup_config(self) -> SupervisedConfig:
        return self.supervised.config

    @property
    def rl_config(self) -> RLConfig:
        return self.rl.config

    # ------------------------------------------------------------------ the front door
    def next_phase(self) -> str:
        """The kind of step :meth:`train_step` will take next."""
        return self.schedule.phase(self.counters["step"])

    def train_step(self, batches: BatchSource | None = None, env: Any = None) -> AgentStep:
        """The next step the schedule asks for: supervised on a batch from ``batches`` (default: the
        task), or an RL update from a rollout in ``env``."""
        phase = self.next_phase()
        if phase == "rl":
            if env is None:
                raise ValueError("The schedule asks for an RL step: pass the task's vector env as env=.")
            metrics = self.rl_step(env)
            step = AgentStep(phase, metrics, env_steps=self.rl_config.rollout_steps * env.num_envs)
        else:
            batch = (batches or self.task).sample_batch(
                self.sup_config.batch_size, self.device, self.generators["supervised"]
            )
            metrics = self.supervised_step(batch)
            step = AgentStep(phase, metrics, tokens=int(batch.tokens.numel()), batch=batch)
        self.counters["step"] += 1
        return step

    def supervised_step(self, batch: SupervisedBatch | None = None) -> dict[str, torch.Tensor]:
        """One optimiser step of the backbone on ``batch`` (default: a fresh batch from the task)."""
        if batch is None:
            batch = self.task.sample_batch(
                self.sup_config.batch_size, self.device, generator=self.generators["supervised"]
            )
        metrics = self.supervised.step(batch.to(self.device))
        self.counters["supervised"] += 1
        self.last_metrics.update(metrics)
        return metrics

    def rl_step(self, env: Any) -> dict[str, torch.Tensor]:
        """Collect a rollout from ``env`` (reset with a seed from the agent's stream), update the engine."""
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generators["env_seeds"]))
        metrics = self.rl.update(env, seed, self.generators["actions"])
        self.counters["rl"] += 1
        self.last_metrics.update(metrics)
        return metrics

    # ------------------------------------------------------------------ acting
    def policy(self, greedy: bool = False, generator: torch.Generator | None = None) -> BackbonePolicy:
        """The engine's policy over the backbone, for :func:`agents.rollout.rollout`."""
        return self.rl.policy(generator or self.generators["actions"], greedy=greedy)

    def backbone_policy(self, mask_invalid: bool = False, stream: bool = False) -> BackbonePolicy:
        """The backbone's own greedy arg-max over the task's action tokens, no engine: how a backbone
        trained on the oracle's moves is scored (``stream``: the env appends each move's token)."""
        ids = torch.as_tensor(self.task.action_token_ids)
        return BackbonePolicy(
            self.backbone, action_token_ids=ids, greedy=True, mask_invalid=mask_invalid, stream=stream
        )

    @torch.no_grad()
    def act(self, obs: Mapping[str, Any], deterministic: bool = False) -> torch.Tensor:
        """Actions (B,) for a batch of sequence observations (dict of ``tokens`` and ``length``)."""
        sequence(obs, self.device)  # names the fix for a non-sequence observation
        self.backbone.eval()
        policy = self.policy(greedy=deterministic)
        policy.begin(obs)
        return policy.act(obs, None)[0]

    def evaluate(self, env: Any, seed: int) -> dict[str, float]:
        """Mean values (score, success, ...) at the end of one episode per sub-env of ``env`` from a reset
        with ``seed``; samples with a stream of its own, and leaves training state untouched."""
        generator = make_generator(seed, "agent/evaluate", self.device)
        was_training = self.backbone.training
        self.backbone.eval()
        out = rollout(env, self.policy(generator=generator), seed=seed)
        self.backbone.train(was_training)
        means = {k: float(v.float().mean()) for k, v in out.final.items()}
        return {"episodes": float(out.finished.sum()), **means}

    def metrics(self) -> dict[str, float]:
        """Latest supervised and RL metrics plus engine and backbone values, as floats for a logger."""
        values = {k: float(v) for k, v in self.last_metrics.items()}
        values.update(self.engine.metrics())
        values.update({f"backbone/{k}": v for k, v in self.backbone.metrics().items()})
        values.update({f"counters/{k}": float(v) for k, v in self.counters.items()})
        return values

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Models, both trainers (optimisers and schedules), step counters and every RNG state."""
        return {
            "backbone": self.backbone.state_dict(),
            "engine": self.engine.state_dict(),
            "supervised": self.supervised.state_dict(),
            "rl": self.rl.state_dict(),
            "counters": dict(self.counters),
            "generators": {name: g.get_state() for name, g in self.generators.items()},
            "rng": rng_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the next step equals the uninterrupted run's."""
        missing = {"backbone", "engine", "supervised", "rl", "counters", "generators"} - set(state)
        if missing:
            raise ValueError(f"Not a DualAgent checkpoint: missing {sorted(missing)}.")
        self.backbone.load_state_dict(state["backbone"])
        self.engine.load_state_dict(state["engine"])
        self.supervised.load_state_dict(state["supervised"])
        self.rl.load_state_dict(state["rl"])
        self.counters = dict(state["counters"])
        for name, generator in self.generators.items():
            restore_generator(generator, state["generators"][name], f"agent/{name}")
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
