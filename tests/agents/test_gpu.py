"""The agent on CUDA: state stays on the device, both kinds of step run, and resume is exact there too."""

import pytest
import torch

from agents.dual import DualAgent, InterleaveSchedule, RLConfig, SupervisedConfig
from agents.engine import InferenceEngine
from tests.agents.echo_env import EchoVectorEnv
from tests.agents.fixtures import EchoTask, make_backbone

pytestmark = pytest.mark.gpu


def _agent(seed=0):
    torch.manual_seed(seed)
    task = EchoTask()
    backbone = make_backbone(task.vocab_size)
    engine = InferenceEngine.for_backbone(backbone, task.action_token_ids, conditioned=True)
    return DualAgent(
        backbone,
        engine,
        task,
        SupervisedConfig(warmup_steps=1, total_steps=50, batch_size=8, bf16=True),
        RLConfig(algorithm="ppo", rollout_steps=5, ppo_epochs=2),
        InterleaveSchedule(supervised_steps=1, rl_steps=1),
        seed=seed,
        device="cuda",
    )


def test_agent_trains_and_resumes_on_cuda(tmp_path):
    agent = _agent()
    env = EchoVectorEnv(num_envs=16, device="cuda", seed=0)
    for _ in range(4):
        metrics = agent.train_step(env=env).metrics
    assert all(v.device.type == "cuda" for k, v in metrics.items() if not k.endswith("/lr"))
    assert all(p.device.type == "cuda" for p in agent.engine.parameters())
    agent.save(tmp_path / "mid.pt")
    expected = [agent.train_step(env=env).metrics for _ in range(3)]
    resumed = _agent(seed=5)
    resumed.load(tmp_path / "mid.pt")
    again = [
        resumed.train_step(env=EchoVectorEnv(num_envs=16, device="cuda", seed=9)).metrics for _ in range(3)
    ]
    for a, b in zip(expected, again):
        key = "supervised/loss" if "supervised/loss" in a else "rl/loss"
        assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6)  # GPU backward kernels may use atomics
