"""RecallVectorEnv(task=...): one RecallTask for sampler and env, conflicts named, registration intact."""

import gymnasium as gym
import pytest
import torch

import envs  # noqa: F401 — registers mindgym/*
from envs.recall import CopyLevel, RecallTask, RecallVectorEnv

LEVELS = [CopyLevel("len2-v4", 2, 4), CopyLevel("len4-v4", 4, 4)]


def test_the_env_plays_the_given_task_and_its_custom_levels_reach_the_sampler():
    task = RecallTask("copy", levels=LEVELS, level=1)
    env = RecallVectorEnv(4, task=task, device="cpu", seed=0)
    assert env.task is task and env.get_level().tolist() == [1] * 4
    env.set_level({"name": "len3-v4", "length": 3, "vocab": 4}, env_ids=[0])
    assert task.ladder.names == ["len2-v4", "len4-v4", "len3-v4"]  # the env added it to the shared ladder
    batch = task.sample_batch(2, level="len3-v4", generator=torch.Generator().manual_seed(0))
    assert int(batch.loss_mask.sum()) == 2 * 3
    obs, info = env.reset(seed=0)
    assert info["level"].tolist() == [2, 1, 1, 1] and obs["length"][:, 0].tolist() == [4, 5, 5, 5]
    assert task.level_index == 1  # the env wrote no level into the task


def test_make_vec_passes_the_registered_family_next_to_a_task_of_that_family():
    task = RecallTask("copy", levels=LEVELS)
    vec = gym.make_vec("mindgym/Copy-v0", num_envs=2, vectorization_mode="vector_entry_point", task=task)
    assert vec.unwrapped.task is task and vec.unwrapped.obs_mode == "sequence"
    with pytest.raises(ValueError, match="task= together with family="):
        gym.make_vec("mindgym/Needle-v0", num_envs=2, vectorization_mode="vector_entry_point", task=task)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda t: RecallVectorEnv(2, task=t, levels=LEVELS), ValueError, "task= together with levels="),
        (lambda t: RecallVectorEnv(2, task=t, family="associative"), ValueError, "together with family="),
        (lambda t: RecallVectorEnv(2), ValueError, "needs family= .* or task="),
        (
            lambda t: RecallVectorEnv(2, family="copy", obs_mode="chunks"),
            ValueError,
            "Unknown recall obs_mode",
        ),
        (lambda t: RecallVectorEnv(2, "copy"), TypeError, "positional"),
    ],
)
def test_bad_constructor_arguments_fail_by_name(make, error, match):
    with pytest.raises(error, match=match):
        make(RecallTask("copy", levels=LEVELS))
