"""The per-prompt group baseline: sub-envs i*K..i*K+K-1 of the text env share a prompt, and
RLConfig.group_size=K compares each return with the other samples of the same prompt only."""

import pytest
import torch

from agents.dual import DualAgent, RLConfig
from agents.engine import InferenceEngine
from agents.training.rl import baseline_advantages
from envs.generation.vector import TextQualityVectorEnv
from tests.agents.fixtures import make_backbone

LEVEL = [{"name": "p16-c8", "prompt_length": 16, "continuation_length": 8}]


def _env(num_envs: int, group: int = 1, seed: int = 0) -> TextQualityVectorEnv:
    return TextQualityVectorEnv(
        num_envs,
        device="cpu",
        levels=LEVEL,
        window=24,
        eos_byte=None,
        dense=True,
        seed=seed,
        prompt_group_size=group,
    )


def test_the_group_baseline_removes_a_per_prompt_offset_exactly():
    gen = torch.Generator().manual_seed(0)
    steps, groups, size = 5, 4, 3
    noise = torch.randn(steps, groups * size, generator=gen)
    offset = (10.0 * torch.randn(1, groups, generator=gen)).repeat_interleave(size, dim=1)  # per prompt
    valid = torch.rand(steps, groups * size, generator=gen) > 0.5
    valid[:, ::size] = valid[:, 1::size] = True  # two or more valid samples of each prompt at each step
    grouped = baseline_advantages(noise + offset, valid, normalize=False, group_size=size)
    torch.testing.assert_close(grouped, baseline_advantages(noise, valid, normalize=False, group_size=size))
    # the old baseline over all sub-envs keeps the prompts' offsets in the advantages
    flat = baseline_advantages(noise + offset, valid, normalize=False)
    assert (flat - grouped).abs().max() > 1.0


def test_a_sample_without_a_valid_sibling_gets_no_advantage():
    returns = torch.tensor([[5.0, 1.0, 2.0, 4.0]])
    valid = torch.tensor([[True, False, True, True]])  # the first prompt's other sample has ended
    advantages = baseline_advantages(returns, valid, normalize=False, group_size=2)
    torch.testing.assert_close(advantages, torch.tensor([[0.0, 0.0, -2.0, 2.0]]))


def test_group_size_one_is_the_leave_one_out_mean_over_all_sub_envs():
    gen = torch.Generator().manual_seed(1)
    returns = torch.randn(4, 6, generator=gen)
    valid = torch.rand(4, 6, generator=gen) > 0.3
    expected = torch.zeros_like(returns)
    for s in range(4):
        for b in range(6):
            others = [returns[s, o] for o in range(6) if o != b and valid[s, o]]
            baseline = torch.stack(others).mean() if others else torch.tensor(0.0)
            expected[s, b] = (returns[s, b] - baseline) if valid[s, b] else 0.0
    torch.testing.assert_close(baseline_advantages(returns, valid, normalize=False), expected)
    torch.testing.assert_close(
        baseline_advantages(returns, valid), baseline_advantages(returns, valid, group_size=1)
    )


def test_a_group_that_does_not_divide_the_sub_envs_is_refused():
    with pytest.raises(ValueError, match="group_size=4"):
        baseline_advantages(torch.zeros(2, 6), torch.ones(2, 6, dtype=torch.bool), group_size=4)
    with pytest.raises(ValueError, match="group_size"):
        RLConfig(group_size=0)


def test_grouped_sub_envs_share_their_prompt_at_every_reset():
    env = _env(8, group=4)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        prompts = obs["tokens"][:, :16]
        assert (prompts[:4] == prompts[0]).all() and (prompts[4:] == prompts[4]).all()
        assert not torch.equal(prompts[0], prompts[4])
    ungrouped, _ = _env(8).reset(seed=0)
    assert len({tuple(row.tolist()) for row in ungrouped["tokens"][:, :16]}) == 8
    # autoreset after a whole episode: each group draws one new prompt
    for _ in range(LEVEL[0]["continuation_length"] + 1):
        obs, *_ = env.step(torch.full((8,), ord("a")))
    prompts = obs["tokens"][:, :16]
    assert (prompts[:4] == prompts[0]).all() and (prompts[4:] == prompts[4]).all()


def test_a_prompt_group_that_does_not_divide_the_envs_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="prompt_group_size=3 does not divide num_envs=8"):
        _env(8, group=3)
    with pytest.raises(ValueError, match="prompt_group_size must be an int"):
        _env(8, group=0)


def _agent(env: TextQualityVectorEnv, group_size: int) -> DualAgent:
    torch.manual_seed(0)
    backbone = make_backbone(env.task.vocab_size, d_model=16, n_layers=1, n_heads=2, max_len=24)
    engine = InferenceEngine.for_backbone(backbone, env.task.action_token_ids, temperature=0.7)
    rl = RLConfig(lr=0.05, rollout_steps=LEVEL[0]["continuation_length"] + 1, group_size=group_size)
    return DualAgent(backbone, engine, env.task, rl=rl, seed=0, device="cpu")


def test_rl_with_groups_trains_the_engine_on_a_grouped_env():
    env = _env(8, group=4)
    agent = _agent(env, 4)
    before = agent.engine.metrics()["engine/temperature"]
    metrics = agent.rl_step(env)
    assert torch.isfinite(metrics["rl/loss"]) and metrics["rl/advantage_std"] > 0
    assert agent.engine.metrics()["engine/temperature"] != before


def test_a_group_baseline_on_an_env_without_shared_prompts_is_refused():
    env = _env(8)
    with pytest.raises(ValueError, match="prompt_group_size=4"):
        _agent(env, 4).rl_step(env)
