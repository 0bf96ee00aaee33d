"""The config of ``python -m runners.ppo``: its structured schema (registered in Hydra's ConfigStore as
``ppo_schema``), the range of every numeric setting, and what a resume may change.

Names follow CleanRL's PPO (``num_steps``, ``gae_lambda``, ``clip_coef``, ``ent_coef`` ...) so its users
read them at once. Bad values are refused before anything runs with the override that fixes them, through
the same :class:`runners.config.Rule` table and messages as the other runners.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from runners.config import (
    ConfigError,
    CurriculumConfig,
    Rule,
    _at_least,
    _between,
    _count,
    _positive,
    _positive_int,
    flatten,
    rule_message,
)

MAZE_OBS_MODES = ("grid", "egocentric")
REFRESH_MODES = ("all", "staggered")
RECALL_FAMILIES = ("copy", "repeat_copy", "associative", "needle")


@dataclass
class PPOEnvConfig:
    """Which native vector env to train on, and how many sub-envs.

    ``family``: ``maze`` or a recall family. ``levels``: the ladder (names of the task's default levels
    or field mappings; null: its default). Maze mazes come from a pool of ``pool_size`` per level that
    is regenerated every ``reseed_every`` updates (a ``reset(seed=...)`` of the env with a seed derived
    from the run seed and the update), so training keeps seeing new mazes and a checkpoint taken at such
    a boundary resumes exactly. ``refresh``: ``all`` restarts every sub-env on the new pool at once;
    ``staggered`` (mazes) fills a second pool bank that each sub-env draws from at its own next reset, so no
    episode is cut and the batch after a refresh is not biased to short episodes; such a run saves the
    env's state in its checkpoints and resumes exactly at any update, without restarting anyone.
    ``mask_actions``: invalid moves (into walls) get no probability.
    """

    family: str = "maze"
    obs_mode: str = "grid"
    levels: list[Any] | None = None
    start_level: int = 0
    num_envs: int = 64
    pool_size: int = 1024
    reseed_every: int = 4
    refresh: str = "all"
    step_limit_factor: float = 3.0
    mask_actions: bool = True


@dataclass
class PPOPolicyConfig:
    """The actor-critic (``agents.ppo_policies.make_policy``): ``auto`` picks a maze CNN for grid images,
    a GRU for token streams, an MLP otherwise; ``maze_graph`` is message passing on the maze's passages
    (the ``maze8``/``maze12`` presets' choice); ``recurrent`` adds a GRU to any of them (null: GRU only)."""

    kind: str = "auto"
    hidden: int = 128
    channels: int = 32
    iterations: int = 8
    recurrent: bool | None = None
    bf16: bool = False  # the encoder under bf16 autocast on CUDA (ignored on the CPU)
    compile: bool = False  # torch.compile the maze encoder's repeated update (fused kernels; GPU presets)


@dataclass
class PPOAlgoConfig:
    """PPO's hyper-parameters, named as in CleanRL's ppo.py."""

    num_steps: int = 32
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    norm_adv: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None


@dataclass
class PPOTrainerConfig:
    """Length and cadence, in env steps (``total_steps``) and PPO updates (the rest)."""

    total_steps: int = 200_000
    max_minutes: float | None = None  # wall-clock budget: stop cleanly, checkpoint and still evaluate
    log_every: int = 1
    eval_every: int = 50
    checkpoint_every: int = 20


@dataclass
class PPOEvalConfig:
    """Greedy evaluation: ``episodes`` fresh episodes per level (seeds disjoint from training) every
    ``trainer.eval_every`` updates at ``levels`` (null: the last level), and at the end at every level."""

    episodes: int = 1024
    levels: list[int] | None = None


@dataclass
class PPOHardwareConfig:
    device: str = "cpu"
    num_threads: int = 0


@dataclass
class PPORunConfig:
    name: str = "ppo"
    seed: int = 0
    resume: Any = False
    env: PPOEnvConfig = field(default_factory=PPOEnvConfig)
    policy: PPOPolicyConfig = field(default_factory=PPOPolicyConfig)
    ppo: PPOAlgoConfig = field(default_factory=PPOAlgoConfig)
    curriculum: CurriculumConfig = field(default_factory=lambda: CurriculumConfig(name="none"))
    trainer: PPOTrainerConfig = field(default_factory=PPOTrainerConfig)
    eval: PPOEvalConfig = field(default_factory=PPOEvalConfig)
    hardware: PPOHardwareConfig = field(default_factory=PPOHardwareConfig)


def register_ppo_config() -> None:
    """Store the schema as ``ppo_schema`` (idempotent)."""
    ConfigStore.instance().store(name="ppo_schema", node=PPORunConfig)


RULES: dict[str, Rule] = {
    "env.start_level": _count("index of the first level", 0),
    "env.num_envs": _positive_int("sub-envs stepped together", 2048),
    "env.pool_size": _positive_int("mazes held per level between reseeds", 4096),
    "env.reseed_every": _positive_int("PPO updates between reseeding the env (new mazes)", 4),
    "env.step_limit_factor": _positive("episode step limit as a multiple of the shortest path", 3.0),
    "policy.hidden": _positive_int("width of the torso and GRU", 128),
    "policy.channels": _positive_int("channels of the maze encoder", 32),
    "policy.iterations": _count("repeats of the maze encoder's shared update (cells of reach)", 8),
    "ppo.num_steps": _positive_int("env steps per sub-env in one rollout", 32),
    "ppo.learning_rate": _positive("Adam's learning rate", 2.5e-4),
    "ppo.gamma": _between(0, 1, "the reward discount", 0.99),
    "ppo.gae_lambda": _between(0, 1, "GAE's lambda", 0.95),
    "ppo.num_minibatches": _positive_int("minibatches per epoch", 4),
    "ppo.update_epochs": _positive_int("passes over each rollout", 4),
    "ppo.clip_coef": _positive("PPO's clip range", 0.2),
    "ppo.ent_coef": _at_least(0, "weight of the entropy bonus", 0.01),
    "ppo.vf_coef": _at_least(0, "weight of the value loss", 0.5),
    "ppo.max_grad_norm": _positive("the largest gradient norm", 0.5),
    "ppo.target_kl": _positive("stop an update's epochs past this KL; null: never", "null", optional=True),
    "trainer.total_steps": _positive_int("env steps of the whole run", 1_000_000),
    "trainer.max_minutes": _positive("wall-clock budget in minutes; null for none", 9, optional=True),
    "trainer.log_every": _positive_int("updates between TensorBoard log points", 1),
    "trainer.eval_every": _positive_int("updates between greedy evaluations", 50),
    "trainer.checkpoint_every": _positive_int("updates between saves of checkpoints/latest.pt", 20),
    "eval.episodes": _positive_int("fresh episodes per level at each evaluation", 1024),
    "hardware.num_threads": _count("CPU threads; 0 keeps torch's default", 1),
}

RESUME_SAFE = (
    "trainer.total_steps",
    "trainer.max_minutes",
    "trainer.log_every",
    "trainer.eval_every",
    "trainer.checkpoint_every",
    "eval.episodes",
    "hardware.device",
    "hardware.num_threads",
    "policy.compile",
)
"""What a resumed run may change: its length, budget, cadence, evaluation size, where it runs and whether the
encoder is compiled (same weights, same computation)."""


def validate_ppo(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Refuse a config before anything runs; one ConfigError lists every problem with its fix."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    flat = flatten({k: v for k, v in data.items() if k != "hydra"})
    known = set(flatten(OmegaConf.to_container(OmegaConf.structured(PPORunConfig))))
    problems = [
        f"{path}: no such setting of runners.ppo (misspelt?); the settings are {', '.join(sorted(known))}"
        for path in flat
        if path not in known
        and not path.startswith("curriculum.params.")
        and not path.startswith("env.levels")
    ]
    problems += [rule_message(p, r, flat[p]) for p, r in RULES.items() if p in flat and not r.holds(flat[p])]
    env, ppo = data["env"], data["ppo"]
    if env["family"] not in ("maze", *RECALL_FAMILIES):
        problems.append(f"env.family must be maze or one of {RECALL_FAMILIES}, got {env['family']!r}")
    elif env["family"] == "maze" and env["obs_mode"] not in MAZE_OBS_MODES:
        problems.append(
            f"env.obs_mode must be one of {MAZE_OBS_MODES} for mazes (token observations train a backbone: "
            f"python -m runners.maze), got {env['obs_mode']!r}; e.g. env.obs_mode=grid"
        )
    elif env["family"] != "maze" and env["obs_mode"] != "stream":
        problems.append(
            f"env.obs_mode must be stream for recall, got {env['obs_mode']!r}; env.obs_mode=stream"
        )
    if env["refresh"] not in REFRESH_MODES:
        problems.append(
            f"env.refresh must be one of {REFRESH_MODES}, got {env['refresh']!r}; e.g. env.refresh=staggered"
        )
    elif env["refresh"] == "staggered" and env["family"] != "maze":
        problems.append(
            f"env.refresh=staggered refreshes a maze pool, and env.family={env['family']} has none; "
            "use env.refresh=all"
        )
    if not problems:
        batch = int(env["num_envs"]) * int(ppo["num_steps"])
        if env["num_envs"] % ppo["num_minibatches"]:
            problems.append(
                f"env.num_envs={env['num_envs']} must be a multiple of ppo.num_minibatches="
                f"{ppo['num_minibatches']} (minibatches split the sub-envs, keeping each one's sequence "
                "whole for a recurrent policy); e.g. ppo.num_minibatches=4"
            )
        if data["trainer"]["total_steps"] < batch:
            problems.append(
                f"trainer.total_steps={data['trainer']['total_steps']} is less than one rollout "
                f"(env.num_envs x ppo.num_steps = {batch}); e.g. trainer.total_steps={batch * 100}"
            )
    if problems:
        raise ConfigError("\n- ".join(["the config of runners.ppo is refused:", *problems]))


def resume_ppo_config(saved: Mapping[str, Any], current: DictConfig, named: set[str]) -> DictConfig:
    """The config a resume runs: the checkpoint's own, with this command's changes to :data:`RESUME_SAFE`
    settings; a change to any other setting is refused, naming the key and both values."""
    merged = OmegaConf.merge(OmegaConf.structured(PPORunConfig), saved)
    old, now = flatten(OmegaConf.to_container(merged)), flatten(OmegaConf.to_container(current, resolve=True))
    refused = [
        f"{path}: saved {old.get(path)!r}, now {value!r}"
        for path, value in now.items()
        if path in named and path not in RESUME_SAFE and path != "resume" and old.get(path) != value
    ]
    if refused:
        raise ConfigError(
            "resume continues the saved run with its own config, and this command changes it:\n  "
            + "\n  ".join(refused)
            + f"\nOn resume only {', '.join(RESUME_SAFE)} may change."
        )
    for path in named & set(RESUME_SAFE):
        OmegaConf.update(merged, path, OmegaConf.select(current, path), merge=False)
    merged.resume = current.resume
    return merged
