"""The supervised step's compiled blocks serve that step alone.

A Hebbian backbone's step compiles per block (``compile="blocks"``). The same backbone is also called by
RL rollouts (one streamed token at a time through a growing KV cache), the RL update and evaluation;
each such call used to recompile the blocks until torch.compile's recompile limit. Graphs are counted
with a backend that runs them eagerly, so the test compiles nothing with inductor and stays fast.
"""

from __future__ import annotations

import pytest
import torch

from agents.backbones import build_backbone
from agents.training.supervised import SupervisedConfig, SupervisedTrainer
from envs.common import SupervisedBatch
from tests.backbones.helpers import VOCAB, tiny


@pytest.fixture
def graphs(monkeypatch: pytest.MonkeyPatch) -> list[torch.fx.GraphModule]:
    """Every graph torch.compile builds during the test (each compile or recompile adds one)."""
    built: list[torch.fx.GraphModule] = []
    real = torch.compile

    def backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):
        built.append(gm)
        return gm.forward

    monkeypatch.setattr(torch, "compile", lambda model, *args, **kwargs: real(model, backend=backend))
    torch._dynamo.reset()  # no cached graph of another test answers for ours
    yield built
    torch._dynamo.reset()


def batch(length: int, seed: int) -> SupervisedBatch:
    tokens = torch.randint(0, VOCAB, (2, length + 1), generator=torch.Generator().manual_seed(seed))
    return SupervisedBatch(tokens[:, :-1], tokens[:, 1:], torch.ones(2, length, dtype=torch.bool))


def test_rl_and_evaluation_calls_never_recompile_the_training_blocks(graphs):
    torch.manual_seed(0)
    backbone = build_backbone(tiny(memory="hebbian", n_layers=3))
    trainer = SupervisedTrainer(backbone, SupervisedConfig(compile="blocks", pad_multiple=16), 10)
    assert trainer.plan == "blocks"
    trainer.step(batch(12, 0))
    trainer.step(batch(16, 1))  # padded to the same 16 positions: the same graphs
    training_graphs = len(graphs)
    assert training_graphs == 2  # one block graph for all three blocks, one for the loss

    backbone.eval()
    with torch.no_grad():  # what evaluation and bits per character do
        backbone(batch(40, 2).tokens, return_state=False)
        state = backbone(batch(8, 3).tokens[:1]).state  # a rollout: a prompt, then one token a step
        for position in range(5):
            state = backbone(torch.full((1, 1), position), state=state).state
    backbone.train()
    backbone(batch(24, 4).tokens[:1]).logits.sum().backward()  # an RL update's backward through it
    assert len(graphs) == training_graphs

    trainer.step(batch(9, 5))  # training again after them: still the graphs compiled at the start
    assert len(graphs) == training_graphs
    assert all("forward" not in vars(block) for block in backbone.blocks)  # eager outside the step


def test_a_compiled_step_equals_the_eager_step(graphs):
    """Scoping the compiled blocks changes where they run, not what a step computes."""
    results = []
    for plan in ("none", "blocks"):
        torch.manual_seed(0)
        backbone = build_backbone(tiny(memory="hebbian"))
        trainer = SupervisedTrainer(backbone, SupervisedConfig(compile=plan, pad_multiple=16), 10)
        for seed in range(2):
            metrics = trainer.step(batch(16, seed))
        results.append((metrics["supervised/loss"], [p.detach().clone() for p in backbone.parameters()]))
    assert graphs  # the second trainer's step ran through compiled graphs
    (eager_loss, eager_weights), (compiled_loss, compiled_weights) = results
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-4, atol=1e-5)
    for compiled, eager in zip(compiled_weights, eager_weights, strict=True):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_on_cuda_the_inductor_graphs_of_the_step_survive_rl_and_evaluation_calls():
    """The same with inductor and the fused Hebbian kernels, bf16 as hardware=gpu trains."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    torch.manual_seed(0)
    backbone = build_backbone(tiny(memory="hebbian", d_model=64, memory_chunk=16)).cuda()
    config = SupervisedConfig(compile="blocks", bf16=True, pad_multiple=32)
    trainer = SupervisedTrainer(backbone, config, 10)
    for seed in range(2):
        trainer.step(batch(32, seed).to("cuda"))
    compiled = counters["stats"]["unique_graphs"]
    backbone.eval()
    with torch.no_grad():
        backbone(batch(48, 2).tokens.cuda(), return_state=False)
        state = backbone(batch(8, 3).tokens[:1].cuda()).state
        for position in range(5):
            state = backbone(torch.full((1, 1), position, device="cuda"), state=state).state
    backbone.train()
    trainer.step(batch(30, 4).to("cuda"))
    assert counters["stats"]["unique_graphs"] == compiled
    torch._dynamo.reset()
