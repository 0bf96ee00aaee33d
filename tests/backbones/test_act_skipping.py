"""ACT that stops computing halted tokens: outputs match the dense schedule where the contract says they
must, the work shrinks with halting, and streaming / training without state still agree."""

import pytest
import torch
from torch import nn

from agents.backbones import build_backbone
from tests.backbones.helpers import VOCAB, tiny

PASSES = 6  # recursion 3 x micro_steps 2


class FixedHalting(nn.Module):
    """A halting head that returns a given probability per (row, position), whatever the hidden state."""

    def __init__(self, probs: torch.Tensor):
        super().__init__()
        self.probs = probs

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.probs[:, : hidden.shape[1]]


def _model(memory=None, threshold=0.9, seed=0, randomise_halting=True):
    torch.manual_seed(seed)
    cfg = tiny(recursion=3, micro_steps=2, act=True, act_threshold=threshold, memory=memory)
    model = build_backbone(cfg).eval()
    if randomise_halting:  # a data-dependent spread of halting steps (the init halts every token alike)
        nn.init.normal_(model.halting.proj.weight, std=2.0)
        nn.init.constant_(model.halting.proj.bias, -0.5)
    return model


def _both(model, tokens, **kwargs):
    """Outputs with skipping, then with the dense schedule, from the same weights."""
    model.cfg.act_skip = True
    skipped = model(tokens, **kwargs)
    skipped_metrics = model.metrics()
    model.cfg.act_skip = False
    dense = model(tokens, **kwargs)
    model.cfg.act_skip = True
    return skipped, skipped_metrics, dense


def _dense_steps(model, tokens):
    """Per-token ACT steps of the dense schedule (B, T)."""
    x0 = model.embed(tokens)
    run = model._dense_passes(x0, model.rope(0, tokens.shape[1]), None, None, False, False)
    return run.halting.steps


def test_a_row_that_never_halts_early_matches_dense_while_another_row_stops_after_one_step():
    model = _model()
    model.halting = FixedHalting(torch.stack([torch.ones(9), torch.zeros(9)]))
    tokens = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        skipped, metrics, dense = _both(model, tokens, return_state=False)
    torch.testing.assert_close(skipped.logits, dense.logits, atol=1e-5, rtol=1e-5)
    # Row 0 ran one step (2 passes) of 3, row 1 all 6 passes: (2 + 6) / 12 of the dense work.
    assert metrics["act/computed_fraction"] == pytest.approx(8 / 12)
    assert metrics["act/steps_mean"] == pytest.approx(2.0)


@pytest.mark.parametrize("memory", [None, "titans"])
def test_tokens_whose_context_ran_as_long_as_they_did_get_the_dense_output(memory):
    model = _model(memory)
    tokens = torch.randint(0, VOCAB, (3, 16))
    with torch.no_grad():
        steps = _dense_steps(model, tokens)
        skipped, metrics, dense = _both(model, tokens)
    # Causal: token t only ever reads positions <= t, so if none of them halted before t did, every pass
    # t computed saw exactly what the dense schedule shows it.
    context_min = torch.cummin(steps, dim=1).values
    same = context_min >= steps
    assert 0 < int(same.sum()) < same.numel() and bool((steps < 3).any())  # the case is not trivial
    torch.testing.assert_close(skipped.logits[same], dense.logits[same], atol=1e-5, rtol=1e-5)
    assert metrics["act/computed_fraction"] < 1.0


def test_halted_tokens_run_no_feed_forward_and_the_loop_ends_once_all_halted():
    model = _model(randomise_halting=False)
    rows_seen: list[int] = []
    for block in model.blocks:
        block.ffn.register_forward_hook(lambda _m, args, _o: rows_seen.append(args[0].shape[:-1].numel()))
    tokens = torch.randint(0, VOCAB, (2, 8))
    model.halting = FixedHalting(torch.ones(2, 8))  # every token halts after its first step
    with torch.no_grad():
        model(tokens, return_state=False)
    assert len(rows_seen) == 2 * model.n_layers  # one step = micro_steps passes; nothing after it
    rows_seen.clear()
    halts = torch.zeros(2, 8)
    halts[:, :6] = 1.0  # 12 of 16 tokens halt after step 1; 4 run all three steps
    model.halting = FixedHalting(halts)
    with torch.no_grad():
        model(tokens, return_state=False)
    dense_rows = PASSES * model.n_layers * 16
    assert sum(rows_seen) < 0.6 * dense_rows  # padded to the row bucket, still well under the dense work


@pytest.mark.parametrize("memory", [None, "titans"])
def test_streamed_chunks_equal_the_full_sequence_with_skipping(memory):
    model = _model(memory)
    tokens = torch.randint(0, VOCAB, (2, 15))
    with torch.no_grad():
        full = model(tokens)
        assert full.metrics["act/computed_fraction"] < 1.0
        state, pieces = model.init_state(2, "cpu"), []
        for lo, hi in [(0, 6), (6, 7), (7, 13), (13, 15)]:
            out = model(tokens[:, lo:hi], state=state)
            pieces.append(out.logits)
            state = out.state
    torch.testing.assert_close(torch.cat(pieces, dim=1), full.logits, atol=2e-5, rtol=1e-4)


def test_training_with_skipping_gives_gradients_and_matches_without_state():
    model = _model("titans").train()
    tokens = torch.randint(0, VOCAB, (2, 12))
    runs = []
    for return_state in (True, False):
        model.zero_grad()
        out = model(tokens, return_state=return_state)
        (out.logits.square().mean() + out.aux_loss).backward()
        runs.append((out.logits, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (with_state, grads), (without_state, grads_without) = runs
    torch.testing.assert_close(without_state, with_state)
    torch.testing.assert_close(grads_without, grads)
    assert model.halting.proj.weight.grad is not None and model.halting.proj.weight.grad.abs().sum() > 0


def test_the_halting_start_sets_how_many_steps_an_untrained_model_takes():
    tokens = torch.randint(0, VOCAB, (2, 8))
    for start, steps in ((0.45, 2.0), (None, 3.0)):  # 0.45 x 2 > 0.8; the default 0.27 x 2 is not
        extra = {} if start is None else {"act_halt_init": start}
        model = build_backbone(tiny(recursion=3, act=True, act_threshold=0.8, **extra)).eval()
        with torch.no_grad():
            metrics = model(tokens).metrics
        assert float(metrics["act/steps_mean"]) == steps
        assert float(metrics["act/computed_fraction"]) == pytest.approx(steps / 3)
    with pytest.raises(ValueError, match="act_halt_init"):
        tiny(act_halt_init=1.0)


@pytest.mark.parametrize("memory", [None, "titans"])
def test_gradient_checkpointing_gives_the_same_outputs_and_gradients(memory, monkeypatch):
    checkpoint, calls = torch.utils.checkpoint.checkpoint, []
    counted = lambda *args, **kwargs: calls.append(1) or checkpoint(*args, **kwargs)  # noqa: E731
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counted)
    tokens = torch.randint(0, VOCAB, (2, 12))
    runs = []
    for checkpointing in (False, True):
        model = _model(memory).train()  # same seed: same weights, halting spread (skipping passes run)
        model.cfg.gradient_checkpointing = checkpointing
        out = model(tokens, return_state=False)
        (out.logits.square().mean() + out.aux_loss).backward()
        runs.append((out.logits, {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(runs[1][0], runs[0][0])
    torch.testing.assert_close(runs[1][1], runs[0][1])
    assert len(calls) >= 2 * PASSES // 3  # every block of every pass that ran went through it
