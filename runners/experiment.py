"""The part of an experiment all three runners share: a DualAgent on a Task, steered by a curriculum.

:class:`AgentExperiment` builds the backbone, the inference engine and the :class:`agents.dual.DualAgent`
from the config (DDP-wrapped under ``hardware=ddp``), the curriculum schedule, and runs the agent's
interleaved supervised / RL steps: supervised batches come from the task at levels the curriculum draws,
RL rollouts from the family's vector env wrapped in the curriculum. A family subclass adds its vector
env, its evaluation and its report.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from agents.backbones import build_backbone
from agents.dual import DualAgent
from agents.engine import InferenceEngine
from curricula import Curriculum, CurriculumSampler, CurriculumVectorWrapper, apply_knobs, build_schedule
from envs.common import Task
from runners.app import rank_seed
from runners.ddp import DistInfo, average_gradients_before_step, broadcast_object, unwrap_model, wrap_model
from runners.logging import RunLogger
from runners.loop import Experiment, StepOutput

ENGINE_KWARGS = (
    "conditioned",
    "condition_hidden",
    "temperature",
    "top_p",
    "repetition_penalty",
    "last_layer_weight",
    "min_temperature",
    "top_p_sharpness",
    "top_p_mode",
    "mix_layers",
    "scale_heads",
)


def build_agent(cfg: DictConfig, task: Task, dist: DistInfo) -> DualAgent:
    """Backbone (with the task's vocabulary), engine and DualAgent as the config describes.

    Under DDP the backbone is a DistributedDataParallel module (its supervised step is one forward and
    backward); the engine's update accumulates several backward passes, so instead its gradients are
    averaged over ranks just before each optimiser step.
    """
    backbone_cfg = dataclasses.replace(
        OmegaConf.to_object(cfg.backbone), vocab_size=task.vocab_size, horizons=task.horizons
    )
    backbone = build_backbone(backbone_cfg)
    engine = InferenceEngine.for_backbone(
        backbone, task.action_token_ids, **{k: cfg.engine[k] for k in ENGINE_KWARGS}
    )
    supervised = OmegaConf.to_object(cfg.trainer.supervised)
    supervised.total_steps = max(int(cfg.trainer.steps), supervised.warmup_steps + 1)
    rl = OmegaConf.to_object(cfg.engine.rl)
    rl.total_steps = max(int(cfg.trainer.steps), rl.warmup_steps + 1)
    agent = DualAgent(
        wrap_model(backbone, dist),
        engine.to(dist.device),
        task,
        supervised=supervised,
        rl=rl,
        schedule=OmegaConf.to_object(cfg.engine.interleave),
        seed=rank_seed(cfg, dist),
        device=dist.device,
    )
    if dist.distributed:  # ranks start from rank 0's engine and average its gradients at every step
        for tensor in agent.engine.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
        average_gradients_before_step(agent.rl_optimizer, dist)
    return agent


class AgentExperiment(Experiment):
    """Agent + curriculum + the interleaved training step; families add envs, evaluation and reports."""

    def __init__(self, cfg: DictConfig, dist: DistInfo, task: Task):
        self.cfg, self.dist, self.task = cfg, dist, task
        self.device = dist.device
        self.seed = rank_seed(cfg, dist)
        self.agent = build_agent(cfg, task, dist)
        params = OmegaConf.to_container(cfg.curriculum.params, resolve=True)
        if cfg.curriculum.name == "staged":
            params["on_stage"] = self.apply_knobs
        schedule = build_schedule(cfg.curriculum.name, task.num_levels, **params)
        self.curriculum = Curriculum(schedule, 1, self.device, self.seed, task.ladder.names)
        self.sampler = CurriculumSampler(
            task, self.curriculum.schedule, self.seed, advance=True, refresh_every=int(cfg.trainer.log_every)
        )
        self._level = int(self.curriculum.schedule.level())
        self._rl_env: CurriculumVectorWrapper | None = None

    # ----------------------------------------------------------------- family hooks
    @abstractmethod
    def make_vector_env(self, num_envs: int, seed: int) -> gym.vector.VectorEnv:
        """The family's native vector env with sequence observations (for RL rollouts and probes)."""

    def tokens_per_batch(self, batch: Any) -> int:
        return int(batch.tokens.numel())

    # ----------------------------------------------------------------- curriculum
    @property
    def level(self) -> int:
        return self._level

    def refresh_curriculum(self) -> None:
        """Copy the schedule's level to the host (call at log / eval time only)."""
        self._level = int(self.curriculum.schedule.level())

    def record_episodes(self, levels: torch.Tensor, success: torch.Tensor) -> None:
        """Feed finished episodes (ladder indices and outcomes) to the curriculum."""
        self.curriculum.stats.record(levels, success, torch.ones_like(success, dtype=torch.bool))
        self.curriculum.schedule.update(self.curriculum.stats, levels, success, torch.ones_like(success))
        self.refresh_curriculum()

    def evaluation_levels(self) -> list[int]:
        """Ladder indices an evaluation measures: ``task.eval_levels``, else up to one above the current."""
        if self.cfg.task.eval_levels is not None:
            return [self.task.ladder.index(int(i)) for i in self.cfg.task.eval_levels]
        return list(range(min(self.level + 2, self.task.num_levels)))

    def levels_to_evaluate(self) -> tuple[int, list[int]]:
        """(current level, levels to evaluate) as rank 0 sees them, so every rank runs the same collectives.

        Under DDP each rank's curriculum learns from its own episodes and may drift from the others'.
        """
        return broadcast_object((self.level, self.evaluation_levels()), self.dist)

    def apply_knobs(self, knobs: dict[str, float]) -> None:
        """A staged curriculum's knobs (e.g. ``{"plasticity": 0.5}``) go to the backbone's setters."""
        apply_knobs(unwrap_model(self.agent.backbone), knobs)

    def log_curriculum(self, logger: RunLogger, step: int) -> dict[str, Any]:
        """The curriculum's own TensorBoard scalars and level histogram (curricula.reporting)."""
        return self.curriculum.log(logger.writer, step)

    # ----------------------------------------------------------------- training
    @property
    def rl_env(self) -> CurriculumVectorWrapper:
        if self._rl_env is None:
            env = self.make_vector_env(int(self.cfg.engine.rl_envs), self.seed + 1)
            self._rl_env = CurriculumVectorWrapper(env, self.curriculum.schedule, seed=self.seed + 2)
            self._rl_env.curriculum.stats = self.curriculum.stats
        return self._rl_env

    def train_step(self, step: int) -> StepOutput:
        agent = self.agent
        phase = agent.schedule.phase(agent.counters["step"])
        if phase == "rl":
            metrics = agent.rl_step(self.rl_env)
            agent.counters["step"] += 1
            steps = agent.rl_config.rollout_steps * self.rl_env.num_envs
            return StepOutput(_short_names(metrics), env_steps=steps)
        batch = self.sampler.sample_batch(
            agent.sup_config.batch_size, self.device, agent.generators["supervised"]
        )
        metrics = agent.supervised_step(batch)
        agent.counters["step"] += 1
        out = _short_names(metrics)
        if (step + 1) % int(self.cfg.trainer.log_every) == 0:
            self.refresh_curriculum()
            out.update(agent.backbone.metrics())
            out.update(agent.engine.metrics())
        return StepOutput(out, tokens=self.tokens_per_batch(batch))

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent.state_dict(),
            "curriculum": self.curriculum.state_dict(),
            "sampler": self.sampler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.curriculum.load_state_dict(state["curriculum"])
        self.sampler.load_state_dict(state["sampler"])
        self.refresh_curriculum()

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only the models of a checkpoint (for evaluation)."""
        self.agent.backbone.load_state_dict(state["agent"]["backbone"])
        self.agent.engine.load_state_dict(state["agent"]["engine"])


def _short_names(metrics: dict[str, Any]) -> dict[str, Any]:
    """``supervised/task_loss`` -> ``ce`` etc.: the train/ tags the runners document."""
    renames = {
        "supervised/loss": "loss",
        "supervised/task_loss": "ce",
        "supervised/accuracy": "accuracy",
        "supervised/grad_norm": "grad_norm",
        "supervised/lr": "lr",
    }
    return {renames.get(k, k): v for k, v in metrics.items()}
