"""SB3 adapter: a MindGym backbone as the feature extractor of PPO and RecurrentPPO on a MindGym env."""

import gymnasium as gym
import pytest
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO

from agents.dual import DualAgent
from agents.engine import InferenceEngine
from agents.sb3 import BackboneFeaturesExtractor, backbone_policy_kwargs
from envs.common.sb3 import SB3VecEnvAdapter
from envs.recall.vector import RecallVectorEnv
from tests.agents.fixtures import make_backbone

TINY_COPY = [{"name": "tiny", "length": 4, "vocab": 4}]
SMALL = {"d_model": 32, "n_layers": 1, "n_heads": 2}


def _env(num_envs=4):
    return SB3VecEnvAdapter(RecallVectorEnv(num_envs=num_envs, family="copy", device="cpu", levels=TINY_COPY))


@pytest.mark.parametrize(
    "algorithm,policy", [(PPO, "MultiInputPolicy"), (RecurrentPPO, "MultiInputLstmPolicy")]
)
def test_ppo_runs_a_few_hundred_steps_with_a_backbone_extractor(algorithm, policy):
    env = _env()
    model = algorithm(
        policy,
        env,
        policy_kwargs=backbone_policy_kwargs(SMALL, env.observation_space),
        n_steps=32,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
    )
    extractor = model.policy.features_extractor
    assert isinstance(extractor, BackboneFeaturesExtractor)
    before = [p.detach().clone() for p in extractor.backbone.parameters()]
    model.learn(256)
    assert model.num_timesteps >= 256
    assert any(not torch.equal(p, q) for p, q in zip(extractor.backbone.parameters(), before))


def test_extractor_reads_the_last_valid_position_and_loads_agent_checkpoints(tmp_path):
    env = RecallVectorEnv(num_envs=3, family="copy", device="cpu", levels=TINY_COPY)
    backbone = make_backbone(env.task.vocab_size, n_layers=1)
    agent = DualAgent(
        backbone, InferenceEngine.for_backbone(backbone, env.task.action_token_ids), env.task, device="cpu"
    )
    agent.save(tmp_path / "agent.pt")
    extractor = BackboneFeaturesExtractor(
        env.single_observation_space,
        {**SMALL, "max_seq_len": 64},
        checkpoint=tmp_path / "agent.pt",
        freeze=True,
    )
    assert all(torch.equal(a, b) for a, b in zip(extractor.backbone.parameters(), backbone.parameters()))
    assert not any(p.requires_grad for p in extractor.backbone.parameters())
    obs, _ = env.reset(seed=0)
    floats = {k: v.float() for k, v in obs.items()}
    features = extractor(floats)
    assert features.shape == (3, 32)
    padded = dict(floats, tokens=floats["tokens"].clone())
    padded["tokens"][:, -1] = 3.0  # beyond `length`: a causal backbone's feature must not change
    assert torch.allclose(extractor(padded), features, atol=1e-5)


def test_non_sequence_spaces_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="sequence observation"):
        BackboneFeaturesExtractor(gym.spaces.Box(0, 1, (4,)))
    space = RecallVectorEnv(
        num_envs=1, family="copy", device="cpu", levels=TINY_COPY
    ).single_observation_space
    with pytest.raises(ValueError, match="vocab_size"):
        BackboneFeaturesExtractor(space, {**SMALL, "vocab_size": 10})
