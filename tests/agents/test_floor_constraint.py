"""RLConfig.floor_key: the engine raises the reward subject to an episode-end value (the text env's fluency)
staying above a floor, through a Lagrange multiplier that grows while the rollouts fall short."""

import pytest
import torch

from agents.dual import DualAgent, RLConfig
from agents.engine import InferenceEngine
from envs.generation.vector import TextQualityVectorEnv
from tests.agents.fixtures import make_backbone

LEVEL = [{"name": "p16-c8", "prompt_length": 16, "continuation_length": 8}]
ONE_EPISODE = LEVEL[0]["continuation_length"] + 1  # rollout steps in which each sub-env plays one episode


def _env() -> TextQualityVectorEnv:
    return TextQualityVectorEnv(8, device="cpu", levels=LEVEL, window=24, eos_byte=None, dense=True, seed=0)


def _agent(**rl_options) -> DualAgent:
    torch.manual_seed(0)
    backbone = make_backbone(256 + 1, d_model=16, n_layers=1, n_heads=2, max_len=24)
    engine = InferenceEngine.for_backbone(backbone, list(range(256)), temperature=0.7)
    rl = RLConfig(lr=0.05, rollout_steps=ONE_EPISODE, **rl_options)
    return DualAgent(backbone, engine, _env().task, rl=rl, seed=0, device="cpu", stream=True)


def test_a_floor_the_rollouts_clear_leaves_the_update_as_without_one():
    plain, floored = _agent(), _agent(floor_key="fluency", floor=-10.0)
    plain.rl_step(_env())
    metrics = floored.rl_step(_env())
    assert float(metrics["rl/floor_multiplier"]) == 0.0  # the multiplier the update used
    assert float(floored.rl.floor_multiplier) == 0.0  # and the next one: the floor was cleared
    for a, b in zip(plain.engine.parameters(), floored.engine.parameters()):
        torch.testing.assert_close(a, b)


def test_a_shortfall_raises_the_multiplier_by_floor_lr_times_the_gap_and_then_steers_the_update():
    agent = _agent(floor_key="fluency", floor=5.0, floor_lr=2.0)  # no text reaches fluency 5
    first = agent.rl_step(_env())
    value = float(first["rl/floor_value"])
    assert value < 5.0
    assert float(agent.rl.floor_multiplier) == pytest.approx(2.0 * (5.0 - value), rel=1e-5)
    plain = _agent()
    plain.rl_step(_env())
    second = agent.rl_step(_env())
    assert float(second["rl/floor_multiplier"]) > 0
    # same rollouts as the plain agent's second update, but fluency now weighs in the returns
    plain_second = plain.rl_step(_env())
    assert float(second["rl/return"]) != pytest.approx(float(plain_second["rl/return"]))
    temperatures = (e.engine.metrics()["engine/temperature"] for e in (agent, plain))
    assert next(temperatures) != pytest.approx(next(temperatures), rel=1e-6)


def test_the_multiplier_is_saved_and_restored_with_the_trainer():
    agent = _agent(floor_key="fluency", floor=5.0)
    agent.rl_step(_env())
    state = agent.rl.state_dict()
    restored = _agent(floor_key="fluency", floor=5.0)
    restored.rl.load_state_dict(state)
    torch.testing.assert_close(restored.rl.floor_multiplier, agent.rl.floor_multiplier)


def test_an_unknown_key_is_refused_naming_what_the_env_reports():
    with pytest.raises(ValueError, match=r"floor_key='fluenc'.*'fluency'"):
        _agent(floor_key="fluenc").rl_step(_env())


def test_rollouts_of_more_than_one_episode_a_sub_env_are_refused_naming_rollout_steps():
    agent = _agent(floor_key="fluency")
    agent.rl.config.rollout_steps = 2 * ONE_EPISODE
    with pytest.raises(ValueError, match=r"rollout_steps \(18; engine\.rl\.rollout_steps\) to the episode"):
        agent.rl_step(_env())


def test_bad_floor_settings_are_refused():
    with pytest.raises(ValueError, match="floor_lr"):
        RLConfig(floor_key="fluency", floor_lr=0.0)
    with pytest.raises(ValueError, match="floor"):
        RLConfig(floor_key="fluency", floor=float("nan"))
