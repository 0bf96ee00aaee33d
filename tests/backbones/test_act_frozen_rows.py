"""ACT skipping computes only the running rows: halted positions serve the keys, values and memory inputs
kept from the pass that computed them. The outputs, gradients and states must equal the plain way of
computing the same thing (every block run on every position's frozen input, then the running rows taken),
and the rows that attention and the memory project and read must fall with the running share."""

import pytest
import torch
from torch import nn

from agents.backbones import build_backbone, titans
from agents.backbones.active_rows import ActiveRows, chunk_grid, gather_rows, scatter_rows
from agents.backbones.transformer import Block, FrozenBlock
from tests.backbones.helpers import VOCAB, tiny
from tests.backbones.test_act_skipping import FixedHalting


def _plain_forward_active(self, x_rows, frozen, rows, rope, head_scale, state, return_state=True):
    """The frozen-neighbour semantics the plain way: the whole block on every position's input of its
    last computed pass (halted ones re-projected), then the running rows' outputs."""
    inputs = x_rows if rows is None else scatter_rows(frozen.inputs, rows, x_rows)
    out = Block.forward(self, inputs, rope, head_scale, state, return_state)
    hidden = out.hidden if rows is None else gather_rows(out.hidden, rows)
    return out._replace(hidden=hidden), FrozenBlock(inputs, inputs, None)


def _model(memory, seed, chunk=4):
    torch.manual_seed(seed)
    cfg = tiny(recursion=3, micro_steps=2, act=True, act_threshold=0.9, memory=memory, memory_chunk=chunk)
    model = build_backbone(cfg)
    nn.init.normal_(model.halting.proj.weight, std=2.0)  # tokens halt at different, data-dependent steps
    nn.init.constant_(model.halting.proj.bias, -0.5)
    for block in model.blocks:
        block.attn.record_max_logit = True  # the QK-clip statistic must see the same logits
    return model


def _run(model, tokens, state, monkeypatch, plain):
    """Logits, state, parameter gradients and attention max-logits of one training forward + backward."""
    with monkeypatch.context() as patch:
        if plain:
            patch.setattr(Block, "forward_active", _plain_forward_active)
        model.zero_grad()
        for block in model.blocks:
            block.attn.max_logit.zero_()
        out = model(tokens, state=state)
        (out.logits.square().mean() + out.aux_loss).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    logits = [block.attn.max_logit.clone() for block in model.blocks]
    return out, grads, logits, model.metrics()


def _spread(running_after_1: float, seed: int, length: int, batch: int = 3) -> FixedHalting:
    """Halting that sends about ``running_after_1`` of the tokens past step 1, half of those past step 2."""
    draw = torch.rand(batch, length, generator=torch.Generator().manual_seed(seed))
    probs = torch.where(draw < running_after_1, 0.0, 1.0)  # 0 runs all 3 steps, 1 halts after step 1
    return FixedHalting(torch.where(draw < running_after_1 / 2, 0.5, probs))  # 0.5: halts after step 2


# (halting, memory chunk, length): a learned head's data-dependent spread, and fixed spreads that keep
# under half the tokens running (attention runs only their queries, masked; the memory reads a per-chunk
# grid narrower than a chunk) or over half (attention runs every query causally; the memory reads all)
CASES = [("learned", 4, 15), ("few", 16, 45), ("most", 16, 45), ("few", 4, 15)]


@pytest.mark.parametrize("memory", [None, "titans", "hebbian"])
@pytest.mark.parametrize("halting,chunk,length", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_rows_path_equals_the_plain_frozen_computation_forward_backward_and_state(
    memory, halting, chunk, length, seed, monkeypatch
):
    model = _model(memory, seed, chunk).train()
    if halting != "learned":
        model.halting = _spread(0.3 if halting == "few" else 0.8, seed, length)
    tokens = torch.randint(0, VOCAB, (3, length))  # a memory chunk is left unfinished (pending)
    read_widths = []  # of the rows path's memory reads
    memory_mlp = titans.memory_mlp
    spy = lambda q, w1, w2: read_widths.append(q.shape[-2]) or memory_mlp(q, w1, w2)  # noqa: E731
    with monkeypatch.context() as patch:
        patch.setattr(titans, "memory_mlp", spy)
        fast, fast_grads, fast_logits, metrics = _run(model, tokens, None, monkeypatch, plain=False)
    plain, plain_grads, plain_logits, _ = _run(model, tokens, None, monkeypatch, plain=True)
    assert 0.0 < metrics["act/computed_fraction"] < 1.0  # some tokens halted, some ran on
    if memory == "titans" and (halting, chunk) == ("few", 16):
        assert min(read_widths) < chunk  # the per-chunk grid ran
    torch.testing.assert_close(fast.logits, plain.logits, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(fast.state, plain.state, atol=2e-5, rtol=1e-4)
    assert fast_grads.keys() == plain_grads.keys()
    torch.testing.assert_close(fast_grads, plain_grads, atol=2e-5, rtol=1e-4)
    # the QK-clip statistic: the running queries' pairs are a subset of the plain computation's
    assert all(bool((f <= p + 1e-5).all()) for f, p in zip(fast_logits, plain_logits, strict=True))
    assert all(bool((f > 0).all()) for f in fast_logits)


@pytest.mark.parametrize("memory", [None, "titans"])
@pytest.mark.parametrize("chunk", [4, 16])
def test_a_continued_stream_equals_the_plain_computation(memory, chunk, monkeypatch):
    """After 6 tokens the Titans memory holds 6 pending positions (chunk 16: its grid starts 6 positions
    into the first chunk) or 2 (chunk 4)."""
    model = _model(memory, 3, chunk).eval()
    tokens = torch.randint(0, VOCAB, (2, 46))
    with torch.no_grad():
        first = model(tokens[:, :6])
        model.halting = _spread(0.3, 3, 40, batch=2)
        fast, _, _, metrics = _run_no_grad(model, tokens[:, 6:], first.state, monkeypatch, plain=False)
        plain, _, _, _ = _run_no_grad(model, tokens[:, 6:], first.state, monkeypatch, plain=True)
    assert metrics["act/computed_fraction"] < 1.0
    torch.testing.assert_close(fast.logits, plain.logits, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(fast.state, plain.state, atol=2e-5, rtol=1e-4)


def _run_no_grad(model, tokens, state, monkeypatch, plain):
    with monkeypatch.context() as patch:
        if plain:
            patch.setattr(Block, "forward_active", _plain_forward_active)
        out = model(tokens, state=state)
    return out, None, None, model.metrics()


def test_attention_and_memory_project_and_read_only_the_running_rows(monkeypatch):
    model = _model("titans", seed=0, chunk=16).eval()
    rows_seen: dict[str, int] = {"ffn": 0, "attention": 0, "memory_in": 0, "memory_out": 0}

    def counter(name):
        def count(_module, args, _output):
            rows_seen[name] += args[0].shape[:-1].numel()

        return count

    for block in model.blocks:
        block.ffn.register_forward_hook(counter("ffn"))
        block.attn.qkv.register_forward_hook(counter("attention"))
        block.memory.qkv.register_forward_hook(counter("memory_in"))
        block.memory.out.register_forward_hook(counter("memory_out"))
    read_cells = []
    memory_mlp = titans.memory_mlp
    monkeypatch.setattr(titans, "memory_mlp", lambda q, w1, w2: read_cells.append(q.shape[-3] * q.shape[-2])
                        or memory_mlp(q, w1, w2))
    halts = torch.ones(2, 64)
    halts[:, 1::8] = 0.0  # 112 of 128 tokens halt after step 1 (2 passes); 1, 9, ..., 57 run all 6 passes
    model.halting = FixedHalting(halts)
    with torch.no_grad():
        model(torch.randint(0, VOCAB, (2, 64)), return_state=False)
    dense = 6 * model.n_layers * 128  # every token through every block of every pass
    assert rows_seen["ffn"] < 0.5 * dense
    # what attention and the memory project and read out is exactly what the feed-forward computes
    assert rows_seen["attention"] == rows_seen["memory_in"] == rows_seen["memory_out"] == rows_seen["ffn"]
    assert rows_seen["memory_in"] == 2 * model.n_layers * 128 + 4 * model.n_layers * 2 * 8
    # reads after step 1: 2 running positions per chunk of 16, through a grid of 4 chunks x 8 cells (the
    # width rounds up to 8) instead of 64 positions
    assert read_cells[-4 * model.n_layers :] == [32] * (4 * model.n_layers)

def test_chunk_grid_places_every_running_position_in_its_chunk_with_or_without_the_counted_width():
    torch.manual_seed(0)
    running = torch.rand(3, 23) < 0.4
    running[2] = False  # a row with nothing running
    for offset in (0, 3):
        counted = ActiveRows.from_mask(running, chunk=8, offset=offset)
        uncounted = ActiveRows.from_mask(running)
        assert counted.last == int(torch.nonzero(running)[:, 1].max())
        chunks = (offset + counted.last) // 8 + 1
        grid, again = chunk_grid(counted, 8, offset, chunks), chunk_grid(uncounted, 8, offset, chunks)
        assert counted.grid.chunks == chunks and torch.equal(counted.grid.index, grid.index)
        assert grid.width == again.width and torch.equal(grid.index, again.index)
        per_chunk = grid.index.view(3, chunks, grid.width)
        for b in range(3):
            for a in torch.nonzero(counted.valid[b])[:, 0].tolist():
                cell = int(grid.slot[b, a])
                assert int(grid.index[b, cell]) == a  # the entry sits in its own cell
                assert cell // grid.width == (int(counted.pos[b, a]) + offset) // 8  # of its own chunk
        held = per_chunk[per_chunk < counted.pos.shape[1]]
        assert held.numel() == counted.count  # every running position once, the other cells empty


@pytest.mark.gpu
@pytest.mark.parametrize("halting", ["few", "most"])
def test_on_cuda_the_rows_path_equals_the_plain_computation_and_stays_close_under_bf16(halting, monkeypatch):
    model = _model("titans", seed=0, chunk=16).cuda().train()
    model.halting = FixedHalting(_spread(0.3 if halting == "few" else 0.8, 0, 45).probs.cuda())
    tokens = torch.randint(0, VOCAB, (3, 45), device="cuda")
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    fast, fast_grads, _, _ = _run(model, tokens, None, monkeypatch, plain=False)
    plain, plain_grads, _, _ = _run(model, tokens, None, monkeypatch, plain=True)
    torch.testing.assert_close(fast.logits, plain.logits, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(fast_grads, plain_grads, atol=1e-4, rtol=1e-3)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        fast = model(tokens, return_state=False).logits.float()
        with monkeypatch.context() as patch:
            patch.setattr(Block, "forward_active", _plain_forward_active)
            plain = model(tokens, return_state=False).logits.float()
    assert torch.isfinite(fast).all()
    torch.testing.assert_close(fast, plain, atol=5e-2, rtol=5e-2)
