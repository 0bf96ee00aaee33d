"""What other frameworks read from a MindGym env, checked on random play.

TorchRL builds its specs from the declared spaces and from the first ``info`` it sees, then checks every
later step against them; RLlib and SB3 do the same with the spaces. So on every step, in every autoreset
mode, single and vector:

- the observation lies in the declared observation space (a vector env: in ``observation_space``, and each
  sub-env's row in ``single_observation_space``);
- under same-step autoreset, ``info["final_obs"]`` (all rows, not only those that ended: frameworks read
  the whole batch) lies there too, and ``final_info`` has the same entries as ``info``;
- ``info`` has the entries, dtypes and shapes it had at ``reset``, the entries its env's docstring
  declares lie in their ranges (``INFO_RULES``), and any other entry is a bool, an integer or a finite float.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers mindgym/*)

OBS_MODES = {
    "mindgym/Maze-v0": ("grid", "tokens", "egocentric"),
    "mindgym/Copy-v0": ("sequence", "stream"),
    "mindgym/RepeatCopy-v0": ("sequence", "stream"),
    "mindgym/AssociativeRecall-v0": ("sequence", "stream"),
    "mindgym/Needle-v0": ("sequence", "stream"),
    "mindgym/TextQuality-v0": ("tokens",),
}
AUTORESET_MODES = ("next_step", "same_step", "disabled")
FINAL_KEYS = {"final_obs", "final_info", "_final_obs", "_final_info"}

Rule = Callable[[np.ndarray, int], bool]  # (values of one info entry, number of levels) -> ok


def _flag(v: np.ndarray, _: int) -> bool:
    return v.dtype == np.bool_


def _fraction(v: np.ndarray, _: int) -> bool:
    return v.dtype.kind == "f" and bool(np.all((v >= 0) & (v <= 1)))


def _count(v: np.ndarray, _: int) -> bool:
    return v.dtype.kind == "i" and bool(np.all(v >= 0))


def _level(v: np.ndarray, levels: int) -> bool:
    return v.dtype.kind == "i" and bool(np.all((v >= 0) & (v < levels)))


def _finite(v: np.ndarray, _: int) -> bool:
    return v.dtype.kind == "f" and bool(np.all(np.isfinite(v)))


def _number(v: np.ndarray, _: int) -> bool:
    """An entry the table does not name: a bool, an integer or a finite float."""
    return v.dtype.kind in "biu" or _finite(v, 0)


_RECALL = {"success": _flag, "accuracy": _fraction, "level": _level}
_RECALL_IDS = (
    "mindgym/Copy-v0",
    "mindgym/RepeatCopy-v0",
    "mindgym/AssociativeRecall-v0",
    "mindgym/Needle-v0",
)
INFO_RULES: dict[str, dict[str, Rule]] = {
    "mindgym/Maze-v0": {
        "success": _flag,
        "level": _level,
        "optimal_length": _count,
        "solved_optimally": _flag,
        "optimal_actions": _flag,
        "steps": _count,
    },
    **dict.fromkeys(_RECALL_IDS, _RECALL),
    "mindgym/TextQuality-v0": {
        "fluency": _finite,
        "diversity": _finite,
        "repetition": _finite,
        "length": _finite,
        "bits_per_byte": _finite,
        "seq_rep_4": _finite,
        "score": _finite,
        "bytes_written": _count,
        "success": _flag,
        "level": _level,
    },
}


def _rows(batch: Any, n: int) -> list[Any]:
    if isinstance(batch, dict):
        return [{k: v[i] for k, v in batch.items()} for i in range(n)]
    return [batch[i] for i in range(n)]


def _layout(info: dict[str, Any]) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {k: (np.asarray(v).dtype.str, np.asarray(v).shape) for k, v in info.items() if k not in FINAL_KEYS}


def _check_info(env_id: str, info: dict[str, Any], layout: dict, levels: int, where: str) -> None:
    assert _layout(info) == layout, f"{where}: info entries changed from reset's {layout} to {_layout(info)}"
    rules = INFO_RULES[env_id]
    missing = set(rules) - set(layout)
    assert not missing, f"{where}: info lacks {sorted(missing)}, which the env's docstring declares"
    for key in layout:
        rule, value = rules.get(key, _number), np.asarray(info[key])
        assert rule(value, levels), f"{where}: info[{key!r}] = {value!r} is outside its declared range"


def play_single(env_id: str, obs_mode: str, steps: int = 300, seed: int = 0, **kwargs: Any) -> int:
    """Random play of the Gymnasium env, checking every observation and info; returns episodes ended."""
    env = gym.make(env_id, obs_mode=obs_mode, **kwargs)
    levels = env.unwrapped.task.num_levels
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    layout, ended = _layout(info), 0
    for t in range(steps):
        where = f"{env_id} {obs_mode} single, step {t}"
        assert env.observation_space.contains(obs), f"{where}: {obs!r} not in {env.observation_space}"
        _check_info(env_id, info, layout, levels, where)
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            ended += 1
            assert env.observation_space.contains(obs), f"{where}: final {obs!r} not in the space"
            _check_info(env_id, info, layout, levels, where + " (end)")
            env.unwrapped.set_level(int(rng.integers(levels)))
            obs, info = env.reset()
    return ended


def play_vector(
    env_id: str,
    obs_mode: str,
    autoreset_mode: str,
    steps: int = 300,
    num_envs: int = 4,
    seed: int = 0,
    **kwargs: Any,
) -> int:
    """Random play of the native vector env at mixed per-sub-env levels (NumPy outputs), checking every
    observation, final observation and info; returns the number of episodes that ended."""
    vec = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode=autoreset_mode,
        device="cpu",
        numpy=True,
        seed=seed,
        obs_mode=obs_mode,
        **kwargs,
    )
    single, batched = vec.single_observation_space, vec.observation_space
    levels = vec.unwrapped.task.num_levels
    generator = torch.Generator().manual_seed(seed)
    vec.unwrapped.set_level(torch.randint(0, levels, (num_envs,), generator=generator))
    vec.action_space.seed(seed)
    obs, info = vec.reset(seed=seed)
    layout, ended = _layout(info), 0
    for t in range(steps + 1):
        where = f"{env_id} {obs_mode} vector {autoreset_mode}, step {t}"
        assert batched.contains(obs), f"{where}: the observation batch is not in {batched}"
        for i, row in enumerate(_rows(obs, num_envs)):
            assert single.contains(row), f"{where}: sub-env {i}'s observation {row!r} is not in {single}"
        _check_info(env_id, info, layout, levels, where)
        if autoreset_mode == "same_step" and t > 0:
            assert set(info) >= FINAL_KEYS, f"{where}: same-step info lacks {FINAL_KEYS - set(info)}"
            assert batched.contains(info["final_obs"]), f"{where}: final_obs is not in {batched}"
            for i, row in enumerate(_rows(info["final_obs"], num_envs)):
                assert single.contains(row), f"{where}: sub-env {i}'s final_obs {row!r} is not in {single}"
            _check_info(env_id, info["final_info"], layout, levels, where + " final_info")
        if t == steps:
            break
        obs, _, terminated, truncated, info = vec.step(vec.action_space.sample())
        done = terminated | truncated
        ended += int(done.sum())
        if autoreset_mode == "disabled" and done.any():
            vec.unwrapped.set_level(torch.randint(0, levels, (num_envs,), generator=generator))
            obs, info = vec.reset(options={"reset_mask": done})
    return ended
