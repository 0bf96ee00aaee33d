"""Train and evaluate a Stable-Baselines3 / sb3-contrib agent from an rl-zoo3-style hyper-parameter file.

    python -m agents.sb3_recipe recipes/sb3/maskable_ppo_maze.yml --out runs/sb3/maze

A recipe file holds one entry keyed by the env id, as rl-zoo3's files do::

    mindgym/Maze-v0:
      algo: maskable_ppo            # ppo | maskable_ppo | recurrent_ppo
      policy: MultiInputPolicy
      n_envs: 256                   # sub-envs of the native vector env (SB3VecEnvAdapter)
      n_timesteps: 3.0e6
      seed: 0                       # training seed: the env's maze pool and the model
      env_kwargs: {obs_mode: walls, levels: [{name: 5x5, height: 5, width: 5}], pool_size: 65536}
      vector_kwargs: {device: cpu}  # only for the training vector env (device, compile, ...)
      policy_kwargs: {features_extractor_class: agents.sb3_extractors.MazePlannerExtractor, ...}
      hyperparams: {n_steps: 64, batch_size: 4096, learning_rate: 5.0e-4, ...}   # the algo's own
      eval: {episodes: 1000, envs: 100, seed: 1000000, curve_every: 250000, curve_episodes: 200}

As in rl-zoo3, ``learning_rate``, ``clip_range``, ``clip_range_vf`` and ``ent_coef`` may be written
``lin_<value>``: a linear decay from the value to 0 over ``n_timesteps`` (``--timesteps`` included; a
run stopped early by ``--max-minutes`` ends before the schedule does). SB3 takes the first three as
schedules; ``ent_coef`` is a plain float there, so a callback sets it before each update.

Training runs on the native vector env; the learning curve (every ``curve_every`` steps: training success
of the sampled policy, greedy success and return on fresh episodes) prints as it goes and is written to
``<out>/curve.csv``. At the end, greedy success on ``eval.episodes`` fresh episodes (single envs seeded
from ``eval.seed``, mazes found in the training pool left out and counted) and on the training pool goes
to ``<out>/result.json``; the model to ``<out>/model.zip``. Class names in ``policy_kwargs`` are dotted
paths under ``agents.``, ``torch.nn.``, ``stable_baselines3.`` or ``sb3_contrib.``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import json
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.utils import LinearSchedule

import envs  # noqa: F401  (registers the mindgym/ ids)
from agents.sb3_eval import evaluate_fresh, play, pool_keys
from envs.common.sb3 import SB3VecEnvAdapter

ALGOS = {
    "ppo": ("stable_baselines3", "PPO"),
    "maskable_ppo": ("sb3_contrib", "MaskablePPO"),
    "recurrent_ppo": ("sb3_contrib", "RecurrentPPO"),
}
CLASS_PREFIXES = ("agents.", "torch.nn.", "stable_baselines3.", "sb3_contrib.")
CLASS_KEYS = ("features_extractor_class", "activation_fn")
FIELDS = {
    "algo", "policy", "n_envs", "n_timesteps", "seed", "env_kwargs", "vector_kwargs", "policy_kwargs",
    "hyperparams", "eval", "device",
}  # fmt: skip
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf", "ent_coef")
EVAL_DEFAULTS = {"episodes": 1000, "envs": 100, "seed": 1_000_000, "curve_every": 0, "curve_episodes": 200}


@dataclasses.dataclass
class Recipe:
    """One recipe file's entry, checked."""

    env_id: str
    algo: str
    policy: str
    n_envs: int
    n_timesteps: int
    seed: int = 0
    device: str = "auto"
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    vector_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    policy_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    hyperparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    eval: dict[str, Any] = dataclasses.field(default_factory=dict)


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file; errors name the file, the key and the rule."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Recipe file {path} not found; the recipes live in recipes/sb3/.")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"{path}: a recipe file holds exactly one entry keyed by the env id, got {data!r}.")
    ((env_id, entry),) = data.items()
    if env_id not in gym.registry:
        raise ValueError(
            f"{path}: unknown env id {env_id!r}; use a registered one such as 'mindgym/Maze-v0'."
        )
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: the entry under {env_id!r} must be a mapping of settings.")
    unknown = sorted(set(entry) - FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(FIELDS)}.")
    missing = sorted({"algo", "policy", "n_envs", "n_timesteps"} - set(entry))
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}.")
    if entry["algo"] not in ALGOS:
        raise ValueError(f"{path}: algo must be one of {sorted(ALGOS)}, got {entry['algo']!r}.")
    for key in ("env_kwargs", "vector_kwargs", "policy_kwargs", "hyperparams", "eval"):
        if not isinstance(entry.get(key, {}), dict):
            raise ValueError(f"{path}: {key} must be a mapping, got {entry[key]!r}.")
    bad_eval = sorted(set(entry.get("eval", {})) - set(EVAL_DEFAULTS))
    if bad_eval:
        raise ValueError(f"{path}: unknown eval key(s) {bad_eval}; allowed: {sorted(EVAL_DEFAULTS)}.")
    for key, value in entry.get("hyperparams", {}).items():
        if isinstance(value, str) and key in SCHEDULE_KEYS:
            linear_start(value, f"{path}: hyperparams.{key}")
    recipe = Recipe(env_id=env_id, **entry)
    recipe.n_envs, recipe.n_timesteps = int(recipe.n_envs), int(float(recipe.n_timesteps))
    recipe.eval = {**EVAL_DEFAULTS, **recipe.eval}
    if recipe.eval["seed"] == recipe.seed:
        raise ValueError(f"{path}: eval.seed must differ from the training seed {recipe.seed}.")
    return recipe


def linear_start(value: str, where: str) -> float:
    """The start of an rl-zoo3-style ``lin_<value>`` schedule (decaying linearly to 0 over the run)."""
    if value.startswith("lin_"):
        try:
            return float(value[4:])
        except ValueError:
            pass
    raise ValueError(
        f"{where}: {value!r} is not a number or a schedule; write a float or lin_<float> (a linear "
        "decay to 0 over n_timesteps), e.g. lin_2e-3."
    )


def resolve_class(dotted: str) -> type:
    """A class from its dotted path, only under the allowed packages (a recipe is data, not code)."""
    if not isinstance(dotted, str) or not dotted.startswith(CLASS_PREFIXES) or "." not in dotted:
        raise ValueError(f"Class {dotted!r} must be a dotted path under one of {list(CLASS_PREFIXES)}.")
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"Cannot import {dotted!r} named in the recipe's policy_kwargs: {err}.") from None


def build_model(recipe: Recipe, venv: SB3VecEnvAdapter, device: str) -> Any:
    """The recipe's algorithm on ``venv``, with its classes resolved."""
    module, name = ALGOS[recipe.algo]
    algo = getattr(importlib.import_module(module), name)
    policy_kwargs = {k: resolve_class(v) if k in CLASS_KEYS else v for k, v in recipe.policy_kwargs.items()}
    hyperparams = dict(recipe.hyperparams)
    for key in ("learning_rate", "clip_range", "clip_range_vf"):
        if isinstance(hyperparams.get(key), str):
            hyperparams[key] = LinearSchedule(linear_start(hyperparams[key], f"hyperparams.{key}"), 0.0, 1.0)
    if isinstance(hyperparams.get("ent_coef"), str):  # a float for SB3; EntropySchedule moves it
        hyperparams["ent_coef"] = linear_start(hyperparams["ent_coef"], "hyperparams.ent_coef")
    return algo(
        recipe.policy,
        venv,
        policy_kwargs=policy_kwargs,
        seed=recipe.seed,
        device=device,
        **hyperparams,
    )


class EntropySchedule(BaseCallback):
    """Sets the model's ``ent_coef`` to ``start * (1 - steps / total)`` before each update (SB3's PPO
    reads a plain float, not a schedule)."""

    def __init__(self, start: float):
        super().__init__()
        self.start = start

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        remaining = 1.0 - self.num_timesteps / max(self.model._total_timesteps, 1)
        self.model.ent_coef = self.start * max(remaining, 0.0)


def make_train_env(recipe: Recipe) -> SB3VecEnvAdapter:
    """The native vector env of the recipe (seeded with its training seed) behind SB3's VecEnv API."""
    vec = gym.make_vec(
        recipe.env_id,
        num_envs=recipe.n_envs,
        vectorization_mode="vector_entry_point",
        seed=recipe.seed,
        **{**recipe.env_kwargs, **recipe.vector_kwargs},
    )
    return SB3VecEnvAdapter(vec.unwrapped)


class CurveCallback(BaseCallback):
    """Every ``every`` steps: training success/return of the last episodes and greedy fresh scores."""

    def __init__(
        self, recipe: Recipe, venv: SB3VecEnvAdapter, out: Path | None, max_minutes: float | None = None
    ):
        super().__init__()
        self.recipe, self.venv, self.out, self.max_minutes = recipe, venv, out, max_minutes
        self.exclude: set | None = None
        self.rows: list[dict[str, float]] = []
        self.next_at = recipe.eval["curve_every"] or None
        self.started = time.perf_counter()
        self.running = None
        self.ended: list[tuple[bool, float]] = []

    def _on_step(self) -> bool:
        rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
        self.running = rewards.copy() if self.running is None else self.running + rewards
        for i in dones.nonzero()[0]:
            self.ended.append((bool(infos[i].get("is_success", False)), float(self.running[i])))
            self.running[i] = 0.0
        return self.max_minutes is None or time.perf_counter() - self.started < 60 * self.max_minutes

    def _on_rollout_end(self) -> None:
        if self.next_at is not None and self.num_timesteps >= self.next_at:
            self.next_at += self.recipe.eval["curve_every"]
            self.record()

    def _on_training_start(self) -> None:
        # SB3's first reset re-seeds the env, which regenerates its maze pool: read the pool after it.
        self.exclude = pool_keys(self.venv.env)

    def record(self) -> dict[str, float]:
        """Append one curve row (and rewrite curve.csv)."""
        recent = self.ended[-2000:]
        ev = self.recipe.eval
        fresh = evaluate_fresh(
            self.model, self.recipe.env_id, self.recipe.env_kwargs, ev["curve_episodes"], ev["envs"],
            ev["seed"] + 10_000, self.exclude,
        )  # fmt: skip
        row = {
            "timesteps": self.num_timesteps,
            "minutes": (time.perf_counter() - self.started) / 60,
            "train_success": sum(s for s, _ in recent) / max(len(recent), 1),
            "train_return": sum(r for _, r in recent) / max(len(recent), 1),
            "fresh_success": fresh["success"],
            "fresh_return": fresh["return"],
        }
        self.ended.clear()
        self.rows.append(row)
        print("curve " + " ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)
        if self.out is not None:
            _write_csv(self.out / "curve.csv", self.rows)
        return row


def _write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def run(
    recipe: Recipe, out: Path | None, device: str = "auto", max_minutes: float | None = None
) -> dict[str, Any]:
    """Train the recipe (stopping early after ``max_minutes`` of training, if given), then score it greedily
    on fresh episodes and on the training pool."""
    device = recipe.device if device == "auto" else device
    venv = make_train_env(recipe)
    model = build_model(recipe, venv, device)
    curve = CurveCallback(recipe, venv, out, max_minutes)
    callbacks: list[BaseCallback] = [curve]
    if isinstance(recipe.hyperparams.get("ent_coef"), str):
        callbacks.append(EntropySchedule(model.ent_coef))
    started = time.perf_counter()
    model.learn(recipe.n_timesteps, callback=CallbackList(callbacks))
    minutes = (time.perf_counter() - started) / 60
    if not curve.rows or curve.rows[-1]["timesteps"] != model.num_timesteps:
        curve.record()
    exclude = pool_keys(venv.env)
    ev = recipe.eval
    fresh = evaluate_fresh(
        model, recipe.env_id, recipe.env_kwargs, ev["episodes"], ev["envs"], ev["seed"], exclude
    )
    pool = play(model, venv, ev["episodes"])
    result = {
        "recipe": recipe.env_id + " " + recipe.algo,
        "seed": recipe.seed,  # the training seed (--seed overrides the file's): runs differ most by it
        "timesteps": model.num_timesteps,
        "planned_timesteps": recipe.n_timesteps,
        "train_minutes": minutes,
        "device": str(model.device),
        "fresh": fresh,
        "pool": pool,
        "pool_size": None if exclude is None else len(exclude),
        "curve": curve.rows,
    }
    print(
        f"final: fresh greedy success {fresh['success']:.3f} (return {fresh['return']:.3f}) on "
        f"{fresh['episodes']} episodes ({fresh['overlap']} in the training pool left out); training pool "
        f"{pool['success']:.3f}; {model.num_timesteps} steps in {minutes:.1f} min",
        flush=True,
    )
    if out is not None:
        tmp = out / "result.json.tmp"
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, out / "result.json")
        model.save(out / "model.zip")
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("recipe", help="a recipe file, e.g. recipes/sb3/maskable_ppo_maze.yml")
    parser.add_argument("--out", type=Path, default=None, help="directory for curve.csv, result.json, model")
    parser.add_argument("--device", default="auto", help="the model's device (default: the recipe's)")
    parser.add_argument("--timesteps", type=float, default=None, help="override n_timesteps")
    parser.add_argument("--seed", type=int, default=None, help="override the training seed (env pool, model)")
    parser.add_argument("--n-envs", type=int, default=None, help="override n_envs")
    parser.add_argument("--eval-episodes", type=int, default=None, help="override eval.episodes")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 keeps torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe)
    if args.timesteps is not None:
        recipe.n_timesteps = int(args.timesteps)
    if args.n_envs is not None:
        recipe.n_envs = args.n_envs
    if args.seed is not None:
        if args.seed == recipe.eval["seed"]:
            raise ValueError(f"--seed {args.seed} is the recipe's eval.seed; pick another training seed.")
        recipe.seed = args.seed
    if args.eval_episodes is not None:
        recipe.eval["episodes"] = args.eval_episodes
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    return run(recipe, args.out, args.device, args.max_minutes)


if __name__ == "__main__":
    main()
