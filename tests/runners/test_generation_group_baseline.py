"""``engine.rl.group_size`` in the generation runner: the RL env shares each prompt among that many
sub-envs, so the engine's baseline compares samples of one prompt; evaluation keeps a prompt per sub-env."""

from __future__ import annotations

import pytest
import torch

from runners.config import ConfigError
from runners.ddp import DistInfo
from runners.generation import GenerationExperiment
from tests.runners.helpers import compose_config

CPU = DistInfo(device=torch.device("cpu"))


def test_the_rl_env_groups_prompts_as_the_engine_baseline_does():
    cfg = compose_config("generation", ["engine.rl.group_size=2", "engine.rl_envs=4", "curriculum=none"])
    experiment = GenerationExperiment(cfg, CPU)
    env = experiment.rl_env.unwrapped
    assert env.prompt_group_size == experiment.agent.rl.config.group_size == 2
    tokens = env.reset(seed=0)[0]["tokens"]
    assert torch.equal(tokens[0], tokens[1]) and torch.equal(tokens[2], tokens[3])
    assert experiment.make_vector_env(4, 0, experiment.eval_task).prompt_group_size == 1


@pytest.mark.parametrize(
    ("runner", "overrides", "names"),
    [
        ("generation", ["engine.rl.group_size=2", "engine.rl_envs=4"], "curriculum=none"),
        ("generation", ["engine.rl.group_size=3", "engine.rl_envs=4", "curriculum=none"], "engine.rl_envs"),
        ("recall", ["engine.rl.group_size=2", "curriculum=none"], "generation runner"),
    ],
)
def test_groups_that_would_not_share_a_prompt_are_refused_with_the_fix(runner, overrides, names):
    from runners.recall import RecallExperiment

    experiment = {"generation": GenerationExperiment, "recall": RecallExperiment}[runner]
    with pytest.raises(ConfigError, match=names):  # the default curriculum puts sub-envs on other levels
        experiment(compose_config(runner, overrides), CPU)
