"""The engine's streamed rollouts and chained update give what re-reading every observation gives.

A streaming trainer (``stream=True``, what the generation runner builds) reads each prompt once and then
one byte a step, and its update reads each chain of steps in one backbone pass; the reference re-reads
every observation in full. Rollouts run past episode ends (sub-envs restart mid-rollout) and, in the
second case, past the observation's window (it slides), where a stream must start afresh.
"""

from __future__ import annotations

import copy

import pytest
import torch

from agents.backbones import BackboneConfig, build_backbone
from agents.dual import DualAgent, RLConfig
from agents.engine import InferenceEngine
from agents.rollout import rollout
from agents.training.chains import chain_ends
from envs.generation.vector import TextQualityVectorEnv

CASES = {  # window, level: episodes end inside a 12-step rollout; the second slides its window
    "restarts": (24, {"name": "p8-c5", "prompt_length": 8, "continuation_length": 5}),
    "sliding": (12, {"name": "p8-c10", "prompt_length": 8, "continuation_length": 10}),
}
# on CUDA the Hebbian memory's fused kernels (chunks of 16) read the prompts and the recurrence the bytes
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _env(window: int, level: dict, device: str) -> TextQualityVectorEnv:
    return TextQualityVectorEnv(num_envs=6, device=device, levels=[level], window=window, dense=True, seed=0)


def _agents(env: TextQualityVectorEnv) -> tuple[DualAgent, DualAgent]:
    """Two agents with the same Hebbian backbone and engine: one streaming, one re-reading."""
    torch.manual_seed(0)
    cfg = BackboneConfig(
        vocab_size=env.task.vocab_size, d_model=32, n_layers=2, n_heads=2, max_seq_len=64,
        memory="hebbian", memory_chunk=16 if env.device.type == "cuda" else 4,
    )  # fmt: skip
    backbone = build_backbone(cfg)
    engine = InferenceEngine.for_backbone(backbone, env.task.action_token_ids)
    rl = RLConfig(rollout_steps=12, minibatch_size=5, entropy_coef=0.01)
    return tuple(
        DualAgent(
            copy.deepcopy(backbone), copy.deepcopy(engine), env.task, rl=rl, device=env.device, stream=s
        )
        for s in (True, False)
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_a_streamed_rollout_acts_as_the_rereading_one(case, device):
    window, level = CASES[case]
    streamed, reread = _agents(_env(window, level, device))
    widths: list[int] = []  # the token widths the streaming agent's backbone reads
    forward = streamed.backbone.forward

    def counted(tokens: torch.Tensor, *args, **kwargs):
        widths.append(tokens.shape[1])
        return forward(tokens, *args, **kwargs)

    streamed.backbone.forward = counted
    outs = []
    for agent in (streamed, reread):
        policy = agent.rl.policy(torch.Generator(device).manual_seed(3))
        outs.append(rollout(_env(window, level, device), policy, seed=5, steps=12, keep_transitions=True))
    assert widths.count(1) >= 3, "the streaming agent must read bytes one at a time between restarts"
    a, b = (out.transitions for out in outs)
    assert bool(a.done.any()) and not bool(a.valid.all()), "sub-envs must restart inside the rollout"
    assert torch.equal(a.actions, b.actions)
    torch.testing.assert_close(a.log_probs, b.log_probs, atol=1e-5, rtol=1e-5)
    for agent in (streamed, reread):  # an evaluation: one episode per sub-env
        agent.backbone.eval()
    greedy = [agent.rl.policy(None, greedy=True) for agent in (streamed, reread)]
    played = [rollout(_env(window, level, device), policy, seed=9) for policy in greedy]
    assert torch.equal(played[0].final_obs["tokens"], played[1].final_obs["tokens"])  # the same text written
    torch.testing.assert_close(played[0].final["score"], played[1].final["score"])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_the_chained_update_equals_the_per_step_update(case, device):
    window, level = CASES[case]
    streamed, reread = _agents(_env(window, level, device))
    a = streamed.rl_step(_env(window, level, device))
    b = reread.rl_step(_env(window, level, device))
    torch.testing.assert_close(a["rl/loss"], b["rl/loss"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a["rl/grad_norm"], b["rl/grad_norm"], atol=1e-5, rtol=1e-4)
    for p, q in zip(streamed.engine.parameters(), reread.engine.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def test_chain_ends_follow_contexts_that_extend_one_another():
    pad = 9
    # one sub-env: prompt [1, 2], writes 3 then 4 (episode ends), a new prompt [5], writes 6
    contexts = [[1, 2, pad, pad], [1, 2, 3, pad], [1, 2, 3, 4], [5, pad, pad, pad], [5, 6, pad, pad]]
    tokens = torch.tensor(contexts)[:, None]  # (S=5, B=1, W=4)
    length = torch.tensor([2, 3, 4, 1, 2])[:, None, None]
    assert chain_ends(tokens, length)[:, 0].tolist() == [2, 2, 2, 4, 4]
    slid = tokens.clone()
    slid[2, 0] = torch.tensor([2, 3, 4, 7])  # the window slid: step 1's context is no longer a prefix
    assert chain_ends(slid, length)[:, 0].tolist() == [1, 1, 2, 4, 4]
