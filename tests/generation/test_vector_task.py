"""TextQualityVectorEnv(task=...): one TextQualityTask for sampler and env; task options clash with it."""

import pytest
import torch

from envs.generation import TextQualityTask
from envs.generation.vector import TextQualityVectorEnv


def test_the_env_plays_the_given_task_and_sees_levels_the_sampler_added():
    task = TextQualityTask(level="p64-c32")
    env = TextQualityVectorEnv(2, task=task, device="cpu", seed=0)
    assert env.task is task and env.get_level().tolist() == [1, 1]
    task.set_level({"name": "p8-c4", "prompt_length": 8, "continuation_length": 4})  # the sampler's side
    env.set_level("p8-c4")  # the env's level tables follow the shared ladder
    obs, info = env.reset(seed=0)
    assert obs["length"][:, 0].tolist() == [8, 8] and info["level"].tolist() == [5, 5]
    for _ in range(4):
        _, _, terminated, _, _ = env.step(torch.tensor([ord("a"), ord("b")]))
    assert terminated.all()


@pytest.mark.parametrize(
    "extra,named",
    [
        ({"levels": [{"name": "x", "prompt_length": 8, "continuation_length": 4}]}, "levels="),
        ({"window": 64}, "window="),
        ({"eos_byte": None}, "eos_byte="),  # passed as None still clashes
        ({"corpus": "some/folder", "reward_weights": {"diversity": 1.0}}, "corpus=, reward_weights="),
    ],
)
def test_task_building_arguments_next_to_a_task_are_an_error(extra, named):
    with pytest.raises(ValueError, match=f"task= together with {named}"):
        TextQualityVectorEnv(2, task=TextQualityTask(), device="cpu", **extra)


def test_the_one_observation_mode_and_keyword_only_arguments():
    with pytest.raises(ValueError, match="its one mode is 'tokens'"):
        TextQualityVectorEnv(1, device="cpu", obs_mode="grid")
    with pytest.raises(TypeError, match="positional"):
        TextQualityVectorEnv(1, "cpu")
    assert TextQualityVectorEnv(1, device="cpu", obs_mode="tokens", seed=0).obs_mode == "tokens"
