"""On the generation env with a reward that punishes repetition, RL on the engine cuts seq-rep-4."""

import torch

from agents.dual import DualAgent, RLConfig, SupervisedConfig
from agents.engine import InferenceEngine
from envs.generation.vector import TextQualityVectorEnv
from tests.agents.fixtures import make_backbone

LEVEL = [{"name": "p16-c24", "prompt_length": 16, "continuation_length": 24}]
REPETITION_ONLY = {"repetition": 2.0, "fluency": 0.0, "diversity": 0.0, "length": 0.0}


def test_rl_on_a_repetition_penalising_reward_cuts_repetition():
    env = TextQualityVectorEnv(
        num_envs=16,
        device="cpu",
        levels=LEVEL,
        reward_weights=REPETITION_ONLY,
        eos_byte=None,
        dense=True,
        window=48,
        seed=0,
    )
    torch.manual_seed(0)
    backbone = make_backbone(env.task.vocab_size, d_model=32, n_layers=2, n_heads=2, max_len=48)
    # A cold start (temperature 0.4) on a briefly trained model loops on frequent bytes: a lot to fix.
    engine = InferenceEngine.for_backbone(backbone, env.task.action_token_ids, temperature=0.4)
    agent = DualAgent(
        backbone,
        engine,
        env.task,
        SupervisedConfig(lr=1e-2, warmup_steps=0, total_steps=80, batch_size=16),
        RLConfig(lr=0.15, rollout_steps=25),
        seed=0,
        device="cpu",
    )
    for _ in range(60):
        agent.supervised_step()
    before = agent.evaluate(env, seed=1234)
    start_penalty = agent.engine.metrics()["engine/repetition_penalty"]
    for _ in range(8):
        agent.rl_step(env)
    after = agent.evaluate(env, seed=1234)
    assert before["episodes"] == after["episodes"] == 16
    assert before["seq_rep_4"] > 0.1, "the starting policy should repeat itself"
    assert after["seq_rep_4"] < 0.5 * before["seq_rep_4"]
    engine_values = agent.engine.metrics()
    raised = engine_values["engine/repetition_penalty"] > start_penalty + 0.05
    hotter = engine_values["engine/temperature"] > 0.4 + 0.05
    assert raised or hotter
