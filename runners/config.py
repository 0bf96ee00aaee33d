"""Structured configs of the runners, registered in Hydra's ConfigStore, and their validation.

Each runner's primary config (``runners/conf/<runner>.yaml``) starts from its schema here
(``maze_schema``, ``recall_schema``, ``generation_schema``, ``evaluate_schema``); the YAML files of the
config groups (task, backbone, engine, curriculum, trainer, hardware, preset) merge into it, so a value of
the wrong type fails at start with Hydra's own message, before any work.

What Hydra does not check is checked here, in one place, before anything runs:

- :func:`check_overrides` reads a command line before Hydra composes it: a misspelt key (with or without
  Hydra's ``+``) is named with the closest known key, and a preset or task of another runner names the
  runner to use.
- :func:`validate` checks a composed config: no keys outside the schema (``+trainer.stepz=100`` adds one
  past Hydra's check), and every numeric field of trainer, hardware, task and engine in its range
  (:data:`RULES`), with the backbone's and the agent's own dataclass checks run early.
- :func:`resume_config` rebuilds a resumed run from its checkpoint's saved config: only the keys in
  :data:`RESUME_SAFE` may change on resume.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from agents.backbones import BackboneConfig
from agents.dual import InterleaveSchedule, RLConfig, SupervisedConfig
from agents.engine import EngineConfig
from envs.generation.reward import COMPONENTS
from foundation import check_seed


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
    # Fixed data sets (the PoH-HRM seed's protocol): this many distinct mazes per level to train on, and
    # as many others to test on, drawn from the run's seed and saved in its checkpoints; null: fresh mazes.
    train_mazes: int | None = None
    test_mazes: int | None = None
    validity_loss: bool = False  # moves into walls masked before the loss's log-softmax (not only acting)
    avoid_revisits: bool = False  # fixed-set walks step back onto visited cells only when they must (seed)
    augment: bool = False  # fixed training mazes shown in their 8 rotations / mirror images


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

    ``reward_weights`` may name any of fluency, word_order, diversity, batch_diversity, repetition and
    length;
    ``eval_bytes`` of the validation split are scored for bits per character; ``eval_envs``
    continuations of validation prompts are written per level at each evaluation.
    """

    corpus: str = "builtin"  # "builtin", a text / jsonl file or folder, or hf:<dataset> (datasets)
    hf_config: str | None = None  # with corpus=hf:<dataset>: the dataset's configuration name
    text_field: Any = "text"  # with corpus=hf:...: the row field, or a list ([prompt,response]) joined
    hf_kwargs: dict[str, Any] = field(default_factory=dict)  # more load_dataset arguments (data_files=...)
    levels: list[Any] | None = None
    start_level: int = 0
    window: int = 256
    train_window: int | None = None  # bytes per supervised window; None: the level's prompt + continuation
    needle_mix: float = 0.0  # share of supervised batches that are needle episodes (runners.generation)
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
    evaluation rollouts); ``rl_envs`` sub-envs collect each RL rollout. ``feature_version`` picks the
    conditioned engine's feature set (``agents.engine_features.for_family``; null: the latest), e.g. 1 to
    resume a text engine trained before the v2 features."""

    feature_version: int | None = None
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
    epochs: int | None = None  # passes over a fixed training set (task.train_mazes); sets steps when given
    log_every: int = 10
    eval_every: int = 100
    checkpoint_every: int = 100
    keep_last: int = 0  # numbered step<k>.pt checkpoints kept beside latest.pt (0: none)
    # What ranks the best checkpoint of each level: an evaluation metric (None: the runner's own score)
    # and whether higher (max) or lower (min) is better; generation: bits_per_char, min.
    best_metric: str | None = None
    best_mode: str = "max"
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
    # Trade compute for memory where a preset opts in (the cognate presets' backbone.gradient_checkpointing
    # follows it): on under hardware=cpu, where host memory is the limit, off on GPUs.
    recompute_activations: bool = False


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
    # on_task=needle scores generation checkpoints on the needle task instead (runners.cross_eval). Not
    # ``task``: that is the training runners' config group (conf/task/), which Hydra would read it as.
    on_task: str | None = None
    needle_bytes: list[int] = field(default_factory=lambda: [2899])
    needle_depths: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0])


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
CONF_PATH = Path(__file__).parent / CONF_DIR
TRAINING_RUNNERS = ("maze", "recall", "generation")
GROUPS = ("task", "backbone", "engine", "curriculum", "trainer", "hardware", "preset")


class ConfigError(ValueError):
    """A runner's config or command line is refused before the run starts (the runners print the message
    without a traceback)."""


def build_curriculum_schedule(curriculum: Any, num_levels: int, **extra: Any) -> Any:
    """``curricula.build_schedule`` from a runner's ``curriculum`` config (``name``, ``params``) plus
    ``extra`` arguments; a bad name or setting is a ConfigError worded as overrides
    (``curriculum.params.threshold=...``), so the runner prints it without a traceback."""
    from curricula import build_schedule

    params = OmegaConf.to_container(curriculum.params, resolve=True) or {}
    try:
        return build_schedule(str(curriculum.name), num_levels, config_key="curriculum", **params, **extra)
    except ValueError as err:
        raise ConfigError(str(err)) from None


# --------------------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """The range of one numeric setting: an int or a number within ``low``/``high`` (open or closed), or
    None where ``optional``; ``meaning`` says what it counts and ``example`` is a sound override value."""

    kind: str  # "int" | "number"
    meaning: str
    example: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False
    allow_inf: bool = False

    def holds(self, value: Any) -> bool:
        if value is None:
            return self.optional
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if math.isnan(value) or (math.isinf(value) and not self.allow_inf):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        kind = "an int" if self.kind == "int" else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        elif self.low == 0 and self.kind == "int":
            text = "a positive int" if self.low_open else "a non-negative int"
        elif self.low == 0 and self.low_open:
            text = "a positive number"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        else:
            text = kind
        return f"null or {text}" if self.optional else text


def _positive_int(meaning: str, example: Any, optional: bool = False) -> Rule:
    return Rule("int", meaning, example, low=0, low_open=True, optional=optional)


def _count(meaning: str, example: Any) -> Rule:
    return Rule("int", meaning, example, low=0)


def _positive(meaning: str, example: Any, allow_inf: bool = False, optional: bool = False) -> Rule:
    return Rule("number", meaning, example, low=0, low_open=True, allow_inf=allow_inf, optional=optional)


def _at_least(low: float, meaning: str, example: Any) -> Rule:
    return Rule("number", meaning, example, low=low)


def _between(low: float, high: float, meaning: str, example: Any, low_open=False, high_open=False) -> Rule:
    return Rule("number", meaning, example, low=low, high=high, low_open=low_open, high_open=high_open)


_SHARED_RULES: dict[str, Rule] = {
    "trainer.steps": _positive_int("optimiser steps of the whole run", 1500),
    "trainer.max_minutes": _positive("wall-clock budget in minutes; null for none", 30, optional=True),
    "trainer.epochs": _positive_int(
        "passes over the fixed training set; null: trainer.steps", 30, optional=True
    ),
    "trainer.log_every": _positive_int("optimiser steps between TensorBoard log points", 10),
    "trainer.eval_every": _positive_int("optimiser steps between evaluations", 500),
    "trainer.checkpoint_every": _positive_int("optimiser steps between saves of checkpoints/latest.pt", 500),
    "trainer.keep_last": _count("numbered checkpoints kept beside latest.pt; 0: none", 3),
    "trainer.supervised.lr": _positive("the backbone's peak learning rate", 0.0003),
    "trainer.supervised.weight_decay": _at_least(0, "AdamW's weight decay", 0.01),
    "trainer.supervised.warmup_steps": _count("steps of linear learning-rate warm-up", 100),
    "trainer.supervised.total_steps": _positive_int(
        "length of the learning-rate schedule; null: trainer.steps", "null", optional=True
    ),
    "trainer.supervised.min_lr_ratio": _between(0, 1, "final learning rate as a fraction of lr", 0.1),
    "trainer.supervised.batch_size": _positive_int("sequences per supervised batch", 32),
    "trainer.supervised.label_smoothing": _between(0, 1, "label smoothing of the loss", 0.1, high_open=True),
    "trainer.supervised.grad_clip": _positive(
        "the largest gradient norm; inf: no clipping", 1.0, allow_inf=True
    ),
    "trainer.supervised.pad_multiple": _positive_int("compiled steps pad sequences to a multiple of it", 64),
    "trainer.supervised.prefetch_batches": _positive_int("batches the sampler draws per level at once", 32),
    "hardware.num_threads": _count("CPU threads; 0 keeps torch's default", 1),
    "engine.rl_envs": _positive_int("sub-envs collecting each RL rollout", 32),
    "engine.condition_hidden": _positive_int("width of the conditioned engine's head", 32),
    "engine.condition_range": _positive("how far the conditioned head may move a knob", 2.0),
    "engine.feature_version": _positive_int("the conditioned engine's feature set version", 1, optional=True),
    "engine.temperature": _positive("the engine's starting temperature, above min_temperature", 1.0),
    "engine.min_temperature": _positive("the engine's lowest temperature", 0.05),
    "engine.top_p": _between(0, 1, "the engine's starting top-p", 0.99, low_open=True, high_open=True),
    "engine.repetition_penalty": _at_least(1, "the engine's starting repetition penalty", 1.05),
    "engine.last_layer_weight": _between(
        0, 1, "the last layer's starting share of the layer mix", 0.9, low_open=True, high_open=True
    ),
    "engine.top_p_sharpness": _positive("sharpness of the smooth top-p cut", 0.02),
    "engine.rl.lr": _positive("the engine's peak learning rate", 0.03),
    "engine.rl.warmup_steps": _count("RL steps of learning-rate warm-up", 0),
    "engine.rl.total_steps": _positive_int(
        "length of the engine's learning-rate schedule; null: trainer.steps", "null", optional=True
    ),
    "engine.rl.min_lr_ratio": _between(0, 1, "final engine learning rate as a fraction of lr", 1.0),
    "engine.rl.condition_lr_scale": _at_least(0, "the conditioned head's rate relative to lr", 0.1),
    "engine.rl.rollout_steps": _positive_int("env steps per RL rollout", 32),
    "engine.rl.gamma": _between(0, 1, "the reward discount", 0.99),
    "engine.rl.entropy_coef": _at_least(0, "weight of the entropy bonus", 0.01),
    "engine.rl.default_pull": _at_least(0, "weight of the pull towards default decoding", 0.0),
    "engine.rl.minibatch_size": _positive_int("rollout rows per backward pass; null: all", 64, optional=True),
    "engine.rl.clip_range": _positive("PPO's clip range", 0.2),
    "engine.rl.ppo_epochs": _positive_int("PPO epochs per rollout", 4),
    "engine.rl.grad_clip": _positive(
        "the engine's largest gradient norm; inf: no clipping", 1.0, allow_inf=True
    ),
    "engine.rl.group_size": _positive_int(
        "RL sub-envs per shared prompt, compared with each other (generation only; divides rl_envs)", 1
    ),
    "engine.rl.floor": Rule(
        "number", "the least mean episode-end engine.rl.floor_key the rollouts keep (with a floor_key)", 1.0
    ),
    "engine.rl.floor_lr": _positive("the floor's multiplier step per unit of shortfall per RL step", 10.0),
    "engine.interleave.supervised_steps": _count("supervised steps per cycle", 1),
    "engine.interleave.rl_steps": _count("RL steps per cycle; 0 trains the backbone only", 1),
    "engine.interleave.warmup_supervised": _count("supervised steps before the first RL step", 100),
    "task.start_level": _count("index of the first curriculum level", 0),
}

RULES: dict[str, dict[str, Rule]] = {
    "maze": {
        **_SHARED_RULES,
        "task.horizons": _positive_int("moves predicted ahead (multi-horizon targets)", 4),
        "task.step_limit_factor": _positive("episode step limit as a multiple of the shortest path", 3.0),
        "task.eval_episodes": _positive_int("fresh mazes walked per level at each evaluation", 64),
        "task.render_rollouts": _count("walks drawn to TensorBoard at each evaluation", 4),
        "task.train_mazes": _positive_int(
            "fixed training mazes per level; null: fresh mazes", 400, optional=True
        ),
        "task.test_mazes": _positive_int("fixed test mazes per level; null: fresh mazes", 80, optional=True),
    },
    "recall": {
        **_SHARED_RULES,
        "task.eval_batch": _positive_int("sequences scored per level at each evaluation", 64),
    },
    "generation": {
        **_SHARED_RULES,
        "task.window": _positive_int("bytes of context the model and the judge see", 256),
        "task.train_window": _positive_int(
            "bytes per supervised training window (and the bits-per-character context); null: the level's",
            1024,
            optional=True,
        ),
        "task.needle_mix": _between(
            0, 1, "share of supervised batches that are needle episodes (0: text only)", 0.25
        ),
        "task.order": _positive_int("n-gram order of the judge", 6),
        "task.eval_bytes": _positive_int("validation bytes scored for bits per character", 16384),
        "task.eval_envs": _positive_int("validation prompts continued per level at each evaluation", 32),
    },
}
"""Every numeric setting of trainer, hardware, task and engine a training runner reads, by runner.
(The backbone's numeric fields are checked by ``BackboneConfig`` itself, which :func:`validate` runs.)"""

DATACLASS_CHECKS = {
    "backbone": BackboneConfig,
    "trainer.supervised": SupervisedConfig,
    "engine.rl": RLConfig,
    "engine.interleave": InterleaveSchedule,
}


# ---------------------------------------------------------------------------------------- unknown keys
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def schema_of(runner: str) -> type:
    """The structured config class of a runner (``maze`` -> :class:`MazeRunConfig`, ...)."""
    return SCHEMAS[f"{runner}_schema"]


def _all_paths(cls: type, prefix: str = "") -> list[str]:
    paths = []
    for name, kind in _field_types(cls).items():
        paths.append(f"{prefix}{name}")
        if dataclasses.is_dataclass(kind):
            paths += _all_paths(kind, f"{prefix}{name}.")
    return paths


def unknown_key_message(path: str, cls: type, root: type | None = None) -> str:
    """``path``'s last key is not a field of ``cls``: name it, the closest field (difflib; else the
    closest key anywhere in ``root``'s schema) and all the fields."""
    known = list(_field_types(cls))
    parent, _, key = path.rpartition(".")
    prefix = f"{parent}." if parent else ""
    where = f"under {parent}" if parent else "at the top level"
    close = [f"{prefix}{k}" for k in difflib.get_close_matches(key, known, n=1, cutoff=0.6)]
    if not close and root is not None:
        elsewhere = {p.rpartition(".")[2]: p for p in reversed(_all_paths(root))}
        close = [elsewhere[k] for k in difflib.get_close_matches(key, list(elsewhere), n=1, cutoff=0.8)]
    guess = f"did you mean {close[0]}? " if close else ""
    return f"Key '{key}' not in '{cls.__name__}': {guess}the keys {where} are {', '.join(known)}."


def _find_unknown_path(path: str, cls: type) -> str | None:
    """The message for a dotted key that leaves the schema, or None when the schema has it (or leaves
    it free: below a dict- or list-valued setting any key is the setting's own)."""
    parts, root = path.split("."), cls
    for depth, key in enumerate(parts):
        types = _field_types(cls)
        if key not in types:
            return unknown_key_message(".".join(parts[: depth + 1]), cls, root)
        if not dataclasses.is_dataclass(types[key]):
            return None
        cls = types[key]
    return None


def _unknown_keys(data: Mapping, cls: type, root: type, prefix: str, problems: list[str]) -> None:
    types = _field_types(cls)
    for key, value in data.items():
        if not prefix and key == "hydra":
            continue
        path = f"{prefix}{key}"
        if key not in types:
            problems.append(f"{path}: {unknown_key_message(path, cls, root)}")
        elif dataclasses.is_dataclass(types[key]) and isinstance(value, Mapping):
            _unknown_keys(value, types[key], root, f"{path}.", problems)


# ------------------------------------------------------------------------------------------- validate
def _lookup(data: Mapping, path: str) -> tuple[bool, Any]:
    node: Any = data
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return False, None
        node = node[key]
    return True, node


def rule_message(path: str, rule: Rule, value: Any) -> str:
    return f"{path} must be {rule.describe()} ({rule.meaning}), got {value!r}; e.g. {path}={rule.example}"


def _check_task(data: Mapping, runner: str, problems: list[str]) -> None:
    task = data.get("task")
    if not isinstance(task, Mapping):
        return
    levels = task.get("levels")
    if levels is not None and (not isinstance(levels, list) or not levels):
        problems.append(
            f"task.levels must be null (the task's default ladder) or a non-empty list of levels (names "
            f"from the default ladder or field mappings), got {levels!r}; e.g. task.levels=[5x5,6x6]"
        )
        levels = None
    count = len(levels) if isinstance(levels, list) else None
    start = task.get("start_level")
    if count is not None and isinstance(start, int) and not isinstance(start, bool) and start >= count:
        problems.append(
            f"task.start_level must index task.levels ({count} levels: 0 to {count - 1}), got {start}; "
            "e.g. task.start_level=0"
        )
    eval_levels = task.get("eval_levels")
    if eval_levels is not None:
        good = (
            isinstance(eval_levels, list)
            and eval_levels
            and all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < (count or 2**31)
                for i in eval_levels
            )
        )
        if not good:
            span = f" below {count}" if count is not None else ""
            problems.append(
                f"task.eval_levels must be null (the current level and the next) or a non-empty list of "
                f"level indices (non-negative ints{span}), got {eval_levels!r}; e.g. task.eval_levels=[0,1]"
            )
    weights = task.get("reward_weights") if runner == "generation" else None
    if weights is not None:
        bad = (
            not isinstance(weights, Mapping)
            or any(k not in COMPONENTS for k in weights)
            or not all(_at_least(0, "", 0).holds(v) for v in weights.values())
        )
        if bad:
            problems.append(
                f"task.reward_weights must map reward components {COMPONENTS} to finite numbers >= 0 "
                f"(each component's sign is built in), got {weights!r}; "
                "e.g. task.reward_weights.repetition=2.0"
            )


def validate(cfg: DictConfig | Mapping, runner: str) -> None:
    """Refuse a training runner's config before anything runs: unknown keys, numbers out of range.

    Raises one ValueError listing every problem, each naming the override to type, the value and the
    rule (``trainer.eval_every must be a positive int (optimiser steps between evaluations), got 0; e.g.
    trainer.eval_every=500``).
    """
    if runner not in TRAINING_RUNNERS:
        raise ValueError(f"runner={runner!r} is not a training runner; use one of {TRAINING_RUNNERS}.")
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    if not isinstance(data, Mapping):
        raise TypeError(f"a runner config is a mapping of settings, got {type(cfg).__name__}.")
    problems: list[str] = []
    _unknown_keys(data, schema_of(runner), schema_of(runner), "", problems)
    if "seed" in data:
        try:
            check_seed(data["seed"])
        except ValueError as err:
            problems.append(f"{err} e.g. seed=0")
    for path, rule in RULES[runner].items():
        found, value = _lookup(data, path)
        if found and not rule.holds(value):
            problems.append(rule_message(path, rule, value))
    _check_task(data, runner, problems)
    if not problems:  # the dataclasses' own cross-field checks, on values already in range
        problems += _dataclass_problems(data)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems in the config:\n- " + "\n- ".join(problems))


def _dataclass_problems(data: Mapping) -> list[str]:
    problems = []
    engine = data.get("engine")
    checks = dict(DATACLASS_CHECKS)
    if isinstance(engine, Mapping):
        knobs = {k: engine[k] for k in EngineConfig.knob_names() if k in engine}
        try:
            EngineConfig(**knobs)
        except (ValueError, TypeError) as err:
            problems.append(f"engine: {err} (override with engine.<knob>=<value>)")
    for path, cls in checks.items():
        found, value = _lookup(data, path)
        if not found or not isinstance(value, Mapping):
            continue
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            cls(**{k: v for k, v in value.items() if k in names})
        except (ValueError, TypeError) as err:
            problems.append(f"{path}: {err} (override with {path}.<field>=<value>)")
    return problems


# ------------------------------------------------------------------------------------- command lines
def _option_file(group: str, option: str) -> Path | None:
    path = CONF_PATH / group / f"{option}.yaml"
    return path if path.is_file() else None


def _task_runners(option: str) -> list[str]:
    """The training runners whose task schema takes every key of ``task/<option>.yaml``."""
    path = _option_file("task", option)
    if path is None:
        return list(TRAINING_RUNNERS)
    keys = set(OmegaConf.load(path)) - {"defaults"}
    return [r for r in TRAINING_RUNNERS if keys <= set(_field_types(_field_types(schema_of(r))["task"]))]


def preset_runner(option: str) -> str | None:
    """The runner ``preset/<option>.yaml`` is made for (``preset.runner``, or its base preset's: a variant
    names its base in its defaults list), or None if it names none."""
    path = _option_file("preset", option)
    if path is None:
        return None
    data = OmegaConf.load(path)
    made_for = OmegaConf.select(data, "preset.runner")
    for base in data.get("defaults", []) if made_for is None else []:
        if isinstance(base, str) and base != "_self_" and base != option:
            made_for = made_for or preset_runner(base)
    return made_for


def _group_choice_problem(runner: str, group: str, option: str) -> str | None:
    if option in ("null", "none", "None"):
        return None
    if group == "preset":
        made_for = preset_runner(option)
        if made_for and made_for != runner:
            return (
                f"preset={option} is made for runners.{made_for}, not runners.{runner}; run "
                f"`python -m runners.{made_for} preset={option}`."
            )
    if group == "task":
        fits = _task_runners(option)
        if runner not in fits and fits:
            return (
                f"task={option} is a task of runners.{fits[0]}, not runners.{runner}; run "
                f"`python -m runners.{fits[0]} task={option}`."
            )
    return None


def check_overrides(runner: str, overrides: Iterable[str]) -> None:
    """Check a command line's overrides before Hydra composes them (Hydra's own message for a misspelt
    key suggests ``+``, which adds the key instead). Raises one ValueError naming every misspelt key with
    the closest known key, and every preset or task of another runner with the command that runs it.
    Overrides Hydra cannot parse are left to Hydra's message."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # Hydra reports a syntax error itself, with its position
        return
    problems = []
    root = schema_of(runner)
    for override in parsed:
        key = override.key_or_group
        if key.startswith("hydra") or override.is_delete() or override.package is not None:
            continue
        if key in GROUPS and not override.is_add():
            try:
                options = (
                    list(override.sweep_string_iterator())
                    if override.is_sweep_override()
                    else [override.get_value_element_as_str()]
                )
            except Exception:  # an unusual sweep: Hydra checks the options itself
                continue
            problems += [p for o in options if (p := _group_choice_problem(runner, key, str(o)))]
            continue
        message = _find_unknown_path(key, root)
        if message:
            problems.append(f"{override.input_line}: {message}")
    if problems:
        raise ConfigError("\n".join(problems))


# -------------------------------------------------------------------------------------------- resume
RESUME_SAFE = (
    "trainer.steps",
    "trainer.max_minutes",
    "trainer.progress_bar",
    "trainer.log_every",
    "trainer.eval_every",
    "trainer.checkpoint_every",
    "trainer.keep_last",
    "trainer.inspect",
    "hardware.device",
    "hardware.num_threads",
    "hardware.recompute_activations",
    "backbone.gradient_checkpointing",
)
"""The settings a resumed run may change: its length, its wall-clock budget, how often it logs,
evaluates and saves, what it shows, where it runs, and whether activations are recomputed in the backward
(the same gradients for less memory). Everything else comes from the checkpoint."""

_ABSENT = object()


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths of a nested mapping's leaves (lists are leaves)."""
    if not isinstance(data, Mapping):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}{key}." if isinstance(value, Mapping) else f"{prefix}{key}"))
    return out


def _interpolated(cfg: Any, prefix: str = "") -> set[str]:
    """Paths of ``cfg``'s values taken from other settings (``${trainer.steps}``): they follow those."""
    paths: set[str] = set()
    if isinstance(cfg, DictConfig):
        for key in cfg:
            path = f"{prefix}{key}"
            if OmegaConf.is_interpolation(cfg, key):
                paths.add(path)
            elif isinstance(cfg[key], DictConfig):
                paths |= _interpolated(cfg[key], f"{path}.")
    return paths


def option_keys(overrides: Iterable[str]) -> set[str]:
    """The settings a command line names: each ``key=value``'s key, and each group choice's keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # the command line composed, so this does not happen in a run
        return set()
    keys: set[str] = set()
    for override in parsed:
        key = override.key_or_group
        if key.startswith("hydra") or override.is_delete():
            continue
        if key in GROUPS and not override.is_sweep_override():
            path = _option_file(key, override.get_value_element_as_str())
            if path is not None:
                text = path.read_text()
                data = OmegaConf.to_container(OmegaConf.load(path)) or {}
                data.pop("defaults", None)
                keys |= set(flatten(data, "" if "@package _global_" in text else f"{key}."))
        else:
            keys.add(key)
    return keys


def resume_config(
    saved: Mapping[str, Any],
    current: DictConfig,
    default: DictConfig,
    runner: str,
    named: Iterable[str] = (),
    source: str = "the checkpoint",
) -> DictConfig:
    """The config of a resumed run: the checkpoint's ``saved`` config, with the changes of this command.

    A setting counts as changed by the command when ``current`` (the composed command line) differs from
    ``default`` (the runner's config without overrides) or the command names it (``named``). Changes to
    :data:`RESUME_SAFE` settings apply; a change of any other setting to a value other than the saved one
    is refused, naming the key, the saved value and the new one. Settings taken from others by
    interpolation follow the saved run.
    """
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema_of(runner)), saved)
    except Exception as err:  # OmegaConf's errors name the key; this says where the config is from
        raise ConfigError(f"The config saved in {source} does not fit runners.{runner}: {err}") from None
    old = flatten(OmegaConf.to_container(merged, resolve=True))
    now = flatten(OmegaConf.to_container(current, resolve=True))
    base = flatten(OmegaConf.to_container(default, resolve=True))
    named = set(named)
    derived = _interpolated(current)
    refused, applied = [], {}
    for path, value in now.items():
        if path == "resume" or path.startswith("hydra.") or path in derived:
            continue
        if base.get(path, _ABSENT) == value and path not in named:
            continue
        before = old.get(path, _ABSENT)
        if before == value:
            continue
        if path in RESUME_SAFE:
            applied[path] = value
        else:
            shown = "(not set)" if before is _ABSENT else repr(before)
            refused.append(f"{path}: saved {shown}, now {value!r}")
    if refused:
        raise ConfigError(
            f"resume continues the run saved in {source} with that run's own config, and this command "
            "changes it:\n  "
            + "\n  ".join(refused)
            + "\nOn resume only "
            + ", ".join(RESUME_SAFE)
            + " may change (trainer.steps to extend the run). Drop the other overrides to continue the "
            "run, or start a new run without resume to train with them."
        )
    for path, value in applied.items():
        OmegaConf.update(merged, path, value, merge=False)
    merged.resume = current.resume
    return merged


def merge_overrides(before: Iterable[str], after: Iterable[str]) -> list[str]:
    """The record of a resumed run's command line: the original overrides, each replaced by the resume's
    override of the same key, then the resume's other overrides."""

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    merged = {key(o): o for o in before}
    merged.update({key(o): o for o in after})
    return list(merged.values())
