"""DualAgent: supervised learning, RL on the engine, separated optimisers, interleaving, exact resume."""

import pytest
import torch

from agents.dual import DualAgent, InterleaveSchedule, RLConfig, SupervisedConfig
from agents.engine import InferenceEngine
from tests.agents.echo_env import EchoVectorEnv
from tests.agents.fixtures import EchoTask, make_backbone


def _agent(seed=0, algorithm="reinforce", schedule=None, sup=None, **engine_kwargs):
    torch.manual_seed(seed)
    task = EchoTask()
    backbone = make_backbone(task.vocab_size, d_model=32, n_layers=2, n_heads=2)
    engine = InferenceEngine.for_backbone(backbone, task.action_token_ids, **engine_kwargs)
    sup = sup or SupervisedConfig(lr=3e-3, warmup_steps=2, total_steps=200, batch_size=16)
    rl = RLConfig(
        algorithm=algorithm, lr=0.05, rollout_steps=5, ppo_epochs=2, entropy_coef=0.01, default_pull=0.01
    )
    return DualAgent(backbone, engine, task, sup, rl, schedule, seed=seed, device="cpu")


def test_tiny_backbone_overfits_a_tiny_batch():
    agent = _agent()
    batch = agent.task.sample_batch(8, generator=torch.Generator().manual_seed(0))
    first = agent.supervised_step(batch)["supervised/loss"]
    for _ in range(80):
        metrics = agent.supervised_step(batch)
    assert float(metrics["supervised/loss"]) < 0.1 * float(first)
    assert float(metrics["supervised/accuracy"]) == 1.0


def test_bf16_autocast_step_gives_a_finite_loss():
    agent = _agent(sup=SupervisedConfig(bf16=True, warmup_steps=0, total_steps=10, batch_size=4))
    assert torch.isfinite(agent.supervised_step()["supervised/loss"])


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_each_optimiser_changes_only_its_own_parameters(algorithm):
    agent = _agent(algorithm=algorithm, conditioned=True)
    env = EchoVectorEnv(num_envs=6, seed=0)

    def snapshot(module):
        return [p.detach().clone() for p in module.parameters()]

    def changed(module, before):
        return [not torch.equal(p, q) for p, q in zip(module.parameters(), before)]

    backbone, engine = snapshot(agent.backbone), snapshot(agent.engine)
    agent.supervised_step()
    assert not any(changed(agent.engine, engine))
    assert any(changed(agent.backbone, backbone))

    backbone, engine = snapshot(agent.backbone), snapshot(agent.engine)
    metrics = agent.rl_step(env)
    assert not any(changed(agent.backbone, backbone))
    assert all(changed(agent.engine, engine))
    assert all(p.requires_grad for p in agent.backbone.parameters())  # unfrozen again
    assert {"rl/return", "rl/advantage_mean", "rl/advantage_std", "rl/entropy"} <= set(metrics)


def test_rl_learns_on_a_reward_the_engine_can_reach():
    """Echo rewards repeating the last token, which the repetition penalty makes less likely: RL lowers it."""
    agent = _agent(repetition_penalty=1.5)
    env = EchoVectorEnv(num_envs=32, seed=0)
    start = agent.engine.metrics()["engine/repetition_penalty"]
    for _ in range(15):
        agent.rl_step(env)
    assert agent.engine.metrics()["engine/repetition_penalty"] < start - 0.1


def test_backbone_policy_acts_by_the_backbones_own_argmax_without_the_engine():
    """Maze scoring walks with the backbone's greedy move, whatever the (untrained) engine would pick."""
    agent = _agent()
    obs, _ = EchoVectorEnv(num_envs=16, seed=0).reset(seed=0)
    policy = agent.backbone_policy()
    assert policy.engine is None and policy.greedy and not policy.stream
    policy.begin(obs)
    actions, _ = policy.act(obs, None)
    with torch.no_grad():
        logits = agent.backbone(obs["tokens"]).logits[torch.arange(16), obs["length"][:, 0] - 1]
    ids = torch.as_tensor(agent.task.action_token_ids)
    assert torch.equal(actions, logits[:, ids].argmax(-1))
    mask = torch.zeros(16, len(ids), dtype=torch.bool)
    mask[:, 1] = True  # mask_invalid: the only action the mask allows, whatever the logits say
    masked = agent.backbone_policy(mask_invalid=True, stream=True)
    assert masked.uses_action_mask and masked.stream
    masked.begin(obs)
    assert torch.equal(masked.act(obs, mask)[0], torch.ones(16, dtype=torch.long))


def test_interleave_schedule_and_train_step():
    schedule = InterleaveSchedule(supervised_steps=2, rl_steps=1, warmup_supervised=3)
    assert [schedule.phase(i) for i in range(9)] == ["supervised"] * 5 + ["rl"] + ["supervised"] * 2 + ["rl"]
    agent = _agent(schedule=InterleaveSchedule(supervised_steps=1, rl_steps=1))
    env = EchoVectorEnv(num_envs=4, seed=0)
    agent.train_step(env=env)
    agent.train_step(env=env)
    assert agent.counters == {"step": 2, "supervised": 1, "rl": 1}
    agent.train_step(env=env)
    with pytest.raises(ValueError, match="RL step"):
        agent.train_step()
    assert agent.next_phase() == "rl"
    values = agent.metrics()
    assert "engine/temperature" in values and "supervised/loss" in values and "rl/return" in values


def _run(agent, env, steps):
    losses = []
    for _ in range(steps):
        metrics = agent.train_step(env=env).metrics
        losses.append(metrics.get("supervised/loss", metrics.get("rl/loss")).clone())
    return torch.stack(losses)


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_resume_equals_uninterrupted(tmp_path, algorithm):
    schedule = InterleaveSchedule(supervised_steps=2, rl_steps=1)
    agent = _agent(seed=1, algorithm=algorithm, schedule=schedule)
    env = EchoVectorEnv(num_envs=4, seed=5)
    _run(agent, env, 4)
    agent.save(tmp_path / "mid.pt", extra={"curriculum": {"level": 1}})
    uninterrupted = _run(agent, env, 5)

    resumed = _agent(seed=99, algorithm=algorithm, schedule=schedule)  # different init, replaced by the load
    extra = resumed.load(tmp_path / "mid.pt")
    assert extra == {"curriculum": {"level": 1}}
    assert resumed.counters == {"step": 4, "supervised": 3, "rl": 1}
    again = _run(resumed, EchoVectorEnv(num_envs=4, seed=123), 5)
    assert torch.equal(uninterrupted, again)


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="algorithm"):
        RLConfig(algorithm="a2c")
    with pytest.raises(ValueError, match="InterleaveSchedule"):
        InterleaveSchedule(supervised_steps=0, rl_steps=0)
    task = EchoTask()
    backbone = make_backbone(task.vocab_size)
    with pytest.raises(ValueError, match="action_token_ids"):
        DualAgent(backbone, InferenceEngine.for_backbone(backbone, [0, 1, 2]), task, device="cpu")
    agent = _agent()
    with pytest.raises(ValueError, match="sequence observations"):
        agent.act({"grid": torch.zeros(2, 3)})


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_minibatched_update_equals_the_full_batch_update(algorithm):
    full, chunked = _agent(algorithm=algorithm), _agent(algorithm=algorithm)
    chunked.rl.config.minibatch_size = 7
    a = full.rl_step(EchoVectorEnv(num_envs=6, seed=0))
    b = chunked.rl_step(EchoVectorEnv(num_envs=6, seed=0))
    assert torch.allclose(a["rl/loss"], b["rl/loss"], atol=1e-6)
    for p, q in zip(full.engine.parameters(), chunked.engine.parameters()):
        assert torch.allclose(p, q, atol=1e-5)
