"""The part of an experiment all three runners share: a DualAgent on a Task, steered by a curriculum.

:class:`AgentExperiment` builds the backbone, the inference engine and the :class:`agents.dual.DualAgent`
from the config (DDP-wrapped under ``hardware=ddp``) and the run's one :class:`curricula.Curriculum`.
The run has one Task: the supervised sampler and the RL vector env are views of it, and both read
their levels from the one curriculum, which they and evaluation only record into; the training loop
alone advances its clock. A family subclass adds its vector env, its evaluation and its report.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from omegaconf import DictConfig, OmegaConf

from agents.backbones import build_backbone
from agents.dual import DualAgent
from agents.engine import EngineConfig, InferenceEngine
from agents.engine_features import for_family
from agents.rollout import BackbonePolicy, Rollout, rollout
from agents.training.speed import flops_per_token
from curricula import Curriculum, CurriculumSampler, CurriculumVectorWrapper, apply_knobs
from envs.common import Task
from foundation import make_generator
from runners.app import rank_seed
from runners.config import ConfigError, build_curriculum_schedule
from runners.ddp import (
    DistInfo,
    average_gradients_before_step,
    broadcast_object,
    pooled_means,
    share_of,
    unwrap_model,
    wrap_model,
)
from runners.ddp_curriculum import SharedCurriculum
from runners.introspection import log_model_internals
from runners.logging import RunLogger
from runners.loop import EvalResult, Experiment, StepOutput
from runners.report import plot_level_bars


def build_agent(
    cfg: DictConfig, task: Task, dist: DistInfo, family: str | None = None, stream: bool = False
) -> DualAgent:
    """Backbone (with the task's vocabulary), engine and DualAgent as the config describes.

    ``family`` (the runner's name) picks the per-step features a conditioned engine reads beside the
    hidden state (:mod:`agents.engine_features`); a maze run with ``task.mask_invalid`` also masks the
    engine's RL rollouts to legal moves, as its evaluation does. ``stream``: the family's env appends each
    action's token to the observation, so the engine's rollouts stream the backbone and its update reads
    each chain of steps in one pass (:class:`agents.training.rl.EngineTrainer`).

    Under DDP the backbone is a DistributedDataParallel module (its supervised step is one forward and
    backward); the engine's update accumulates several backward passes, so instead its gradients are
    averaged over ranks just before each optimiser step.
    """
    backbone_cfg = dataclasses.replace(
        OmegaConf.to_object(cfg.backbone), vocab_size=task.vocab_size, horizons=task.horizons
    )
    if backbone_cfg.compact_vocab and backbone_cfg.token_ids is None:
        if not hasattr(task, "token_ids"):
            raise ValueError(
                f"backbone.compact_vocab=true needs a task that lists its token ids (the recall runner's "
                f"do); {type(task).__name__} does not. Set backbone.compact_vocab=false."
            )
        backbone_cfg = dataclasses.replace(backbone_cfg, token_ids=task.token_ids())
    backbone = build_backbone(backbone_cfg)
    knobs = {name: cfg.engine[name] for name in EngineConfig.knob_names()}
    features = (
        for_family(family, cfg.engine.feature_version)
        if family is not None and cfg.engine.conditioned
        else None
    )
    engine = InferenceEngine.for_backbone(
        backbone, task.action_token_ids, EngineConfig(**knobs), n_features=features.size if features else 0
    )
    agent = DualAgent(
        wrap_model(backbone, dist),
        engine.to(dist.device),
        task,
        supervised=OmegaConf.to_object(cfg.trainer.supervised),
        rl=OmegaConf.to_object(cfg.engine.rl),
        schedule=OmegaConf.to_object(cfg.engine.interleave),
        seed=rank_seed(cfg, dist),
        device=dist.device,
        total_steps=int(cfg.trainer.steps),
        mask_invalid=bool(cfg.task.get("mask_invalid", False)),
        features=features,
        stream=stream,
    )
    if dist.distributed:  # ranks start from rank 0's engine and average its gradients at every step
        for tensor in agent.engine.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
        average_gradients_before_step(agent.rl.optimizer, dist)
    return agent


@dataclass
class LevelScore:
    """One level measured on fresh episodes: mean metrics under the family's own names (``exact_path``,
    ``exact_match``, ``reward``, ...), each episode's outcome for the curriculum, and what the family
    logs about the current level (walks to draw, text samples)."""

    means: dict[str, torch.Tensor]
    outcomes: torch.Tensor
    env_steps: int = 0
    detail: Any = None


def check_group_baseline(cfg: DictConfig, task: Task, streams_actions: bool) -> None:
    """Refuse ``engine.rl.group_size`` > 1 where its groups would not be samples of one prompt: a runner
    whose env does not share prompts (only generation does), a group size that does not divide
    ``engine.rl_envs``, or a curriculum that can put a group's sub-envs on different levels (different
    prompts and lengths: they would never reset together again)."""
    group = int(cfg.engine.get("rl", {}).get("group_size", 1))
    if group == 1:
        return
    fix = "or set engine.rl.group_size=1"
    if not streams_actions:
        raise ConfigError(
            f"engine.rl.group_size={group} is for the generation runner (prompts shared by groups); {fix}."
        )
    if int(cfg.engine.rl_envs) % group:
        raise ConfigError(
            f"engine.rl.group_size={group} must divide engine.rl_envs={cfg.engine.rl_envs}: set "
            f"engine.rl_envs to a multiple of {group} {fix}."
        )
    if task.num_levels > 1 and cfg.curriculum.name != "none":
        raise ConfigError(
            f"engine.rl.group_size={group} needs every RL sub-env on one level, but curriculum="
            f"{cfg.curriculum.name} draws a level per sub-env: add curriculum=none (one level: "
            f"task.start_level) or one level in task.levels, {fix}."
        )


class AgentExperiment(Experiment):
    """Agent + curriculum + the interleaved training step + the evaluation loop over levels; a family adds
    its vector env, how one level is scored (:meth:`score_level`) and its reports.

    ``headline`` names the metric that ranks checkpoints and moves the report's per-level table;
    ``streams_actions``: the family's env appends each action's token to the observation (see
    :func:`build_agent`'s ``stream``).
    """

    headline: str
    streams_actions = False

    def __init__(self, cfg: DictConfig, dist: DistInfo, task: Task):
        self.cfg, self.dist, self.task = cfg, dist, task
        check_group_baseline(cfg, task, self.streams_actions)
        self.device = dist.device
        self.seed = rank_seed(cfg, dist)
        self.agent = build_agent(cfg, task, dist, family=self.runner, stream=self.streams_actions)
        model = unwrap_model(self.agent.backbone)
        self.backbone_cfg, self.n_params = model.cfg, sum(p.numel() for p in model.parameters())
        extra = {"on_stage": self.apply_knobs} if cfg.curriculum.name == "staged" else {}
        schedule = build_curriculum_schedule(cfg.curriculum, task.num_levels, **extra)
        if dist.distributed:  # every rank records every rank's outcomes and moves in step with the others
            self.curriculum = SharedCurriculum(schedule, dist, self.seed, task.ladder.names)
        else:
            self.curriculum = Curriculum(schedule, self.device, self.seed, task.ladder.names)
        self.sampler = CurriculumSampler(
            task,
            self.curriculum,
            self.seed,
            refresh_every=int(cfg.trainer.log_every),
            prefetch=int(cfg.trainer.supervised.prefetch_batches),
            bucket=bool(cfg.trainer.supervised.bucket_by_length),
        )
        self._rl_env: CurriculumVectorWrapper | None = None
        self.last_eval: dict[str, float] = {}

    # ----------------------------------------------------------------- family hooks
    @abstractmethod
    def make_vector_env(self, num_envs: int, seed: int) -> gym.vector.VectorEnv:
        """The family's native vector env over ``self.task`` with sequence observations (RL rollouts)."""

    @abstractmethod
    def score_level(self, index: int, seed: int) -> LevelScore:
        """Measure ladder level ``index`` on fresh episodes drawn from ``seed``: this rank's share of
        them (:meth:`eval_share`) under DDP, each rank from its own seed."""

    def eval_share(self, total: int) -> int:
        """How many of an evaluation's ``total`` episodes this rank plays: all of them in a single
        process, about ``total / world_size`` under DDP (:func:`runners.ddp.share_of`); the ranks' results
        are pooled by episode counts."""
        return share_of(total, self.dist)

    def log_detail(self, detail: Any, index: int, logger: RunLogger, step: int) -> None:
        """Log what :meth:`score_level` kept about the current level (images, text); nothing by default."""

    def eval_extras(self, step: int, logger: RunLogger) -> dict[str, float]:
        """Level-independent evaluation metrics (bits per character, a heatmap); none by default."""
        return {}

    def tokens_per_batch(self, batch: Any) -> int:
        return int(batch.tokens.numel())

    # ----------------------------------------------------------------- curriculum
    @property
    def level(self) -> int:
        """The curriculum's level (one host copy: the loop reads it at log and eval time only)."""
        return self.curriculum.level()

    def evaluation_levels(self) -> list[int]:
        """Ladder indices an evaluation measures: ``task.eval_levels``, else up to one above the current."""
        if self.cfg.task.eval_levels is not None:
            return [self.task.ladder.index(int(i)) for i in self.cfg.task.eval_levels]
        return list(range(min(self.level + 2, self.task.num_levels)))

    def levels_to_evaluate(self) -> tuple[int, list[int]]:
        """(current level, levels to evaluate) as rank 0 sees them, so every rank runs the same collectives.

        Under DDP the ranks' curricula record the same outcomes (:class:`SharedCurriculum`) and agree;
        the broadcast makes the agreement a guarantee for the collectives that follow.
        """
        return broadcast_object((self.level, self.evaluation_levels()), self.dist)

    def apply_knobs(self, knobs: dict[str, float]) -> None:
        """A staged curriculum's knobs (e.g. ``{"plasticity": 0.5}``) go to the backbone's setters."""
        apply_knobs(unwrap_model(self.agent.backbone), knobs)

    def log_curriculum(self, logger: RunLogger, step: int) -> dict[str, Any]:
        """The curriculum's own TensorBoard scalars and level histogram (curricula.reporting)."""
        return self.curriculum.log(logger.writer, step)

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, step: int, logger: RunLogger) -> EvalResult:
        """Score the current level and its neighbours on fresh episodes; record every episode into the
        curriculum; ``<metric>/<level>`` for each level and plain ``<metric>`` for the current one.

        Under DDP each rank plays its share of the episodes from its own seed; the metrics are pooled over
        all ranks' episodes and every rank's curriculum records all of them."""
        level_before, levels = self.levels_to_evaluate()
        metrics = self.eval_extras(step, logger)
        if self.agent.schedule.rl_steps:  # what the reward taught the engine, beside eval/<success>
            metrics.update(self.agent.engine.metrics())
        per_level: dict[int, float] = {}
        env_steps = 0
        for index in levels:
            scored = self.score_level(index, self.seed + 7 + step + index)
            env_steps += scored.env_steps
            means, _ = pooled_means(scored.means, int(scored.outcomes.numel()), self.dist)
            name = self.task.ladder[index].name
            metrics.update({f"{key}/{name}": value for key, value in means.items()})
            per_level[index] = means[self.headline]
            outcomes = scored.outcomes.bool()
            self.curriculum.record(torch.full_like(outcomes, index, dtype=torch.long), outcomes)
            if index == level_before:
                metrics.update(means)
                self.log_detail(scored.detail, index, logger, step)
        if isinstance(self.curriculum, SharedCurriculum):
            self.curriculum.sync()  # the evaluation's outcomes of every rank, before the curriculum logs
        metrics[f"{self.headline}_mean"] = sum(per_level.values()) / max(len(per_level), 1)
        if self.cfg.trainer.inspect and logger.enabled:
            generator = make_generator(step, "inspect", "cpu")
            sample = self.task.sample_batch(1, self.device, generator, level_before)
            about = f"one {self.task.ladder[level_before].name} sample"  # the level in every image's title
            log_model_internals(self.agent.backbone, sample.tokens, logger, step, about)
        self.log_curriculum(logger, step)
        self.last_eval = {self.task.ladder[k].name: v for k, v in per_level.items()}
        return EvalResult(metrics, level_before, metrics[self.headline], per_level, env_steps)

    def play(
        self,
        env: gym.vector.VectorEnv,
        index: int,
        policy: BackbonePolicy,
        seed: int,
        keep_transitions: bool = False,
    ) -> Rollout:
        """One episode per sub-env of ``env`` at ladder level ``index`` with ``policy``, the backbone in
        eval mode (the one rollout function, :func:`agents.rollout.rollout`); ``keep_transitions`` keeps
        every step (``runners.replay`` draws them)."""
        env.set_level(index)
        self.agent.backbone.eval()
        return rollout(env, policy, seed=seed, keep_transitions=keep_transitions)

    def summary(self) -> dict[str, Any]:
        return {f"{self.headline}_by_level": self.last_eval, "curriculum": self.curriculum.summary()}

    def plot_title(self) -> str:
        """The per-level bar chart's title; a family adds how many episodes each level was scored on."""
        return f"{self.runner}: {self.headline} per level"

    def plots(self, out_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        """Best and final headline metric per level (the end-of-run table's numbers)."""
        path = out_dir / f"{self.headline}_by_level.png"
        return [plot_level_bars(history, self.headline, path, self.plot_title(), self.task.ladder.names)]

    # ----------------------------------------------------------------- training
    @property
    def rl_env(self) -> CurriculumVectorWrapper:
        if self._rl_env is None:
            env = self.make_vector_env(int(self.cfg.engine.rl_envs), self.seed + 1)
            self._rl_env = CurriculumVectorWrapper(env, self.curriculum)
        return self._rl_env

    def train_step(self, step: int) -> StepOutput:
        """One step through the agent's front door: supervised from the sampler, or RL in the env."""
        env = self.rl_env if self.agent.next_phase() == "rl" else None
        done = self.agent.train_step(self.sampler, env)
        out = _short_names(done.metrics)
        if done.phase == "supervised" and (step + 1) % int(self.cfg.trainer.log_every) == 0:
            out.update(self.agent.backbone.metrics())
            out.update(self.agent.engine.metrics())
        if done.batch is None:
            return StepOutput(out, env_steps=done.env_steps)
        tokens = self.tokens_per_batch(done.batch)
        flops = tokens * flops_per_token(self.backbone_cfg, self.n_params, done.batch.tokens.shape[1])
        return StepOutput(out, tokens=tokens, flops=flops)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Agent, curriculum and sampler, and the task's own state when it has one (a fixed maze set's
        mazes and place in the epoch)."""
        state = {
            "agent": self.agent.state_dict(),
            "curriculum": self.curriculum.state_dict(),
            "sampler": self.sampler.state_dict(),
        }
        if hasattr(self.task, "state_dict"):
            state["task"] = self.task.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.curriculum.load_state_dict(state["curriculum"])
        self.sampler.load_state_dict(state["sampler"])
        if hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(saved_task_state(state))

    def load_weights(self, state: dict[str, Any]) -> None:
        """Only the models of a checkpoint (for evaluation), and the data a stateful task evaluates on
        (a fixed maze run's test sets: ``runners.evaluate`` tests on the mazes the run was tested on)."""
        self.agent.backbone.load_state_dict(state["agent"]["backbone"])
        self.agent.engine.load_state_dict(state["agent"]["engine"])
        if hasattr(self.task, "load_state_dict") and ("task" in state or "maze_sets" in state):
            self.task.load_state_dict(saved_task_state(state), sets_only=True)


def saved_task_state(state: dict[str, Any]) -> dict[str, Any]:
    """The task's state in an experiment checkpoint: ``task``, or ``maze_sets`` as fixed maze runs saved
    it before the key was shared by every task (those checkpoints still resume)."""
    if "task" in state:
        return state["task"]
    if "maze_sets" in state:
        return state["maze_sets"]
    raise KeyError("The checkpoint holds no task state ('task'), which this run's task needs to resume.")


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
