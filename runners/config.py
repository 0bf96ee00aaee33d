"""Structured configs of the runners, registered in Hydra's ConfigStore.

Each runner's primary config (``runners/conf/<runner>.yaml``) starts from its schema here
(``maze_schema``, ``recall_schema``, ``generation_schema``, ``evaluate_schema``); the YAML files of the
config groups (task, backbone, engine, curriculum, trainer, hardware, preset) merge into it, so a key that
does not exist or a value of the wrong type fails at start with Hydra's own message, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from agents.backbones import BackboneConfig
from agents.dual import InterleaveSchedule, RLConfig, SupervisedConfig
from agents.engine import EngineConfig


@dataclass
class MazeTaskConfig:
    """Maze task: the ladder (default-level names or MazeLevel field mappings; None = MazeTask's default).

    ``horizons`` > 1 gives multi-horizon targets (the runner builds the backbone with as many horizons);
    ``mask_invalid`` masks moves into walls when the model acts; ``eval_generators`` adds the same sizes
    from other generators to ``runners.evaluate``.
    """

    levels: list[Any] | None = None
    start_level: int = 0
    horizons: int = 1
    step_limit_factor: float = 3.0
    mask_invalid: bool = False
    eval_mode: str = "rollout"  # rollout | teacher_forced (one pass over oracle paths; perfect mazes only)
    eval_episodes: int = 64
    eval_levels: list[int] | None = None
    eval_generators: list[str] = field(default_factory=lambda: ["prim", "wilson"])
    render_rollouts: int = 4


@dataclass
class RecallTaskConfig:
    """Recall task: family (copy, repeat_copy, associative, needle), its ladder and evaluation grid."""

    family: str = "copy"
    levels: list[Any] | None = None
    start_level: int = 0
    eval_batch: int = 64
    eval_levels: list[int] | None = None


@dataclass
class GenerationTaskConfig:
    """Text-quality task: corpus ("builtin" or a file / folder path), levels, window and reward.

    ``reward_weights`` may name any of fluency, diversity, batch_diversity, repetition and length;
    ``eval_bytes`` of the validation split are scored for bits per character; ``eval_envs``
    continuations of validation prompts are written per level at each evaluation.
    """

    corpus: str = "builtin"
    levels: list[Any] | None = None
    start_level: int = 0
    window: int = 256
    order: int = 6
    dense: bool = True
    reward_weights: dict[str, float] = field(default_factory=dict)
    eval_bytes: int = 16384
    eval_envs: int = 32
    eval_levels: list[int] | None = None


@dataclass
class EngineRunConfig(EngineConfig):
    """The inference engine: its decoding knobs (``agents.engine.EngineConfig``, defined there once) and
    its policy-gradient training. ``rl`` is the agent's ``RLConfig``; ``interleave`` its
    ``InterleaveSchedule`` (``rl_steps: 0`` trains the backbone only, the engine still decodes
    evaluation rollouts); ``rl_envs`` sub-envs collect each RL rollout."""

    rl: RLConfig = field(default_factory=RLConfig)
    interleave: InterleaveSchedule = field(default_factory=lambda: InterleaveSchedule(rl_steps=0))
    rl_envs: int = 32


@dataclass
class CurriculumConfig:
    """A schedule from ``curricula.build_schedule(name, num_levels, **params)``."""

    name: str = "adaptive"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainerConfig:
    """The loop's length and cadence (counted in agent steps) and the backbone's supervised training."""

    steps: int = 600
    max_minutes: float | None = None  # wall-clock budget: stop cleanly (checkpoint, report, plots)
    log_every: int = 10
    eval_every: int = 100
    checkpoint_every: int = 100
    progress_bar: bool = True
    inspect: bool = True
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)


@dataclass
class HardwareConfig:
    """Where to run: device, DDP under torchrun, CPU threads (bf16 autocast is trainer.supervised.bf16)."""

    device: str = "cpu"
    ddp: bool = False
    backend: str = "auto"
    num_threads: int = 0


@dataclass
class PresetInfo:
    """Set by a preset: its name and the runner it is made for (checked at start)."""

    name: str | None = None
    runner: str | None = None


@dataclass
class RunConfig:
    """Fields every training runner shares."""

    name: str = "run"
    seed: int = 0
    deterministic: bool = False
    resume: bool | str = False
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    engine: EngineRunConfig = field(default_factory=EngineRunConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    preset: PresetInfo = field(default_factory=PresetInfo)


@dataclass
class MazeRunConfig(RunConfig):
    name: str = "maze"
    task: MazeTaskConfig = field(default_factory=MazeTaskConfig)


@dataclass
class RecallRunConfig(RunConfig):
    name: str = "recall"
    task: RecallTaskConfig = field(default_factory=RecallTaskConfig)


@dataclass
class GenerationRunConfig(RunConfig):
    name: str = "generation"
    task: GenerationTaskConfig = field(default_factory=GenerationTaskConfig)


@dataclass
class EvaluateConfig:
    """``python -m runners.evaluate checkpoint=PATH`` (or ``checkpoint=[A,B]`` to compare runs)."""

    checkpoint: Any = MISSING
    labels: list[str] | None = None
    device: str = "cpu"
    seed: int = 0
    episodes: int = 0


SCHEMAS = {
    "maze_schema": MazeRunConfig,
    "recall_schema": RecallRunConfig,
    "generation_schema": GenerationRunConfig,
    "evaluate_schema": EvaluateConfig,
}


def register_configs() -> None:
    """Store the runner schemas in Hydra's ConfigStore (idempotent; runners call it at import)."""
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(name=name, node=node)


CONF_DIR = "conf"
