"""``engine.rl.group_size`` in the generation runner: the RL env shares each prompt among that many
sub-envs, so the engine's baseline compares samples of one prompt; evaluation keeps a prompt per sub-env."""

from __future__ import annotations

import torch

from runners.ddp import DistInfo
from runners.generation import GenerationExperiment
from tests.runners.helpers import compose_config

CPU = DistInfo(device=torch.device("cpu"))


def test_the_rl_env_groups_prompts_as_the_engine_baseline_does():
    cfg = compose_config("generation", ["engine.rl.group_size=2", "engine.rl_envs=4"])
    experiment = GenerationExperiment(cfg, CPU)
    env = experiment.rl_env.unwrapped
    assert env.prompt_group_size == experiment.agent.rl.config.group_size == 2
    tokens = env.reset(seed=0)[0]["tokens"]
    assert torch.equal(tokens[0], tokens[1]) and torch.equal(tokens[2], tokens[3])
    assert experiment.make_vector_env(4, 0, experiment.eval_task).prompt_group_size == 1
