"""Regression tests of the recall hardening: size caps, actions checked first, seeds, refused levels."""

import time

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from envs.recall.associative import AssociativeLevel
from envs.recall.copy_task import CopyLevel, RepeatCopyLevel
from envs.recall.families import FAMILIES
from envs.recall.levels import MAX_SEQUENCE_LENGTH
from envs.recall.needle import NeedleLevel
from envs.recall.task import RecallTask


@pytest.mark.parametrize(
    "make",
    [
        lambda: CopyLevel("huge", 10**9, 8),
        lambda: RepeatCopyLevel("huge", 20_000, 8, 16),
        lambda: AssociativeLevel("huge", 4, 16, 4, 10**9),
        lambda: NeedleLevel("huge", 10**9, filler="random"),
        lambda: RecallTask("copy", levels=[{"name": "huge", "length": 10**9, "vocab": 8}]),
        lambda: RecallTask("copy").set_level({"name": "huge", "length": 10**9, "vocab": 8}),
    ],
)
def test_recall_levels_beyond_the_size_cap_fail_fast_with_the_cap_named(make):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"{MAX_SEQUENCE_LENGTH:,}|{MAX_SEQUENCE_LENGTH}"):
        make()
    assert time.perf_counter() - start < 0.5  # refused before anything is allocated


def test_every_default_level_fits_under_the_cap_with_room_to_grow():
    longest = max(
        level.sequence_length for family in FAMILIES.values() for level in family.default_levels()
    )
    assert 3 * longest < MAX_SEQUENCE_LENGTH
    NeedleLevel("at-cap", MAX_SEQUENCE_LENGTH - 60, filler="random")  # long but allowed


@pytest.mark.parametrize("env_id", ["mindgym/Copy-v0", "mindgym/AssociativeRecall-v0"])
def test_after_a_one_step_episode_the_action_is_checked_first(env_id):
    env = gym.make(env_id).unwrapped  # level 0 of both has one answer: one step ends the episode
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(0)
    assert terminated
    for bad in (0.5, -1, 10**6, True, "1", None):
        with pytest.raises(ValueError, match="Action must be an int"):
            env.step(bad)
    with pytest.raises(RuntimeError, match="reset"):  # a valid action on a finished episode
        env.step(0)
    env.reset()
    env.step(np.int64(0))


@pytest.mark.parametrize("seed", [-1, 2**64, 2.0, False, "3", [1]])
def test_bad_seeds_raise_a_value_error_naming_the_seed_rule(seed):
    single = gym.make("mindgym/Copy-v0")
    vector = gym.make_vec("mindgym/Copy-v0", 2, vectorization_mode="vector_entry_point", device="cpu")
    for env in (single, vector):
        with pytest.raises(ValueError, match=r"seed must be None or an int in \[0, 2\*\*64\)"):
            env.reset(seed=seed)


def test_numpy_seeds_give_the_episodes_of_the_equal_int_seed():
    a, b = gym.make("mindgym/Copy-v0"), gym.make("mindgym/Copy-v0")
    obs_a, _ = a.reset(seed=np.int64(11))
    obs_b, _ = b.reset(seed=11)
    assert np.array_equal(obs_a["tokens"], obs_b["tokens"])


def test_vector_set_level_with_bad_env_ids_does_not_grow_the_ladder():
    env = gym.make_vec("mindgym/Copy-v0", 2, vectorization_mode="vector_entry_point", device="cpu")
    base = env.unwrapped
    size = len(base.task.ladder)
    with pytest.raises(ValueError, match="env_ids"):
        base.set_level({"name": "custom", "length": 2, "vocab": 4}, env_ids=[7])
    assert len(base.task.ladder) == size
    with pytest.raises(ValueError, match=r"shape \(\) or \(2,\)"):
        base.set_level(torch.tensor([0, 1, 2]))
    env.reset(seed=0)
    env.step(np.zeros(2, dtype=np.int64))


def test_levels_need_a_non_empty_str_name():
    with pytest.raises(ValueError, match="non-empty str name"):
        RecallTask("copy", levels=[CopyLevel("", 2, 4)])
    with pytest.raises(ValueError, match="non-empty str name"):
        RecallTask("copy").set_level({"name": 5, "length": 2, "vocab": 4})
