"""The PoH backbone: per-token head routing, the two-timescale loop, the entropy regulariser, the seed's
sizes and depth-first parity, the CNN maze encoder."""

from __future__ import annotations

import pytest
import torch

from agents.backbones import BackboneConfig, PoHBackbone, build_backbone
from agents.backbones.maze_encoder import MazeGridEncoder, wall_image
from agents.backbones.parity import count_parameters
from envs.maze import MazeLevel, MazeTask
from envs.maze import tokens as tok

VOCAB = tok.VOCAB_SIZE
SEED_POH, SEED_BASELINE = 7_041_465, 7_211_664  # the seed's results.json: PoH-HRM and its baseline


def tiny(**fields) -> BackboneConfig:
    base = dict(vocab_size=VOCAB, kind="poh", d_model=32, n_heads=4, n_layers=2, recursion=3, hrm_period=2)
    return BackboneConfig(**{**base, **fields})


def tokens(batch: int = 3, length: int = 12) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(0))


def routing_weights(model: PoHBackbone, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out = model(x, inspect=True)
    return {k: v.values[:, 0] for k, v in out.inspection.addressing.items() if k.endswith("routing")}


@pytest.mark.parametrize("topk", [0, 2])
def test_routing_weights_sum_to_one_per_token(topk):
    torch.manual_seed(0)
    model = build_backbone(tiny(route_topk=topk)).eval()
    weights = routing_weights(model, tokens())
    assert sorted(weights) == ["block0.routing", "block1.routing"]
    for w in weights.values():
        assert w.shape == (3, 12, 4)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 12))
        if topk:
            assert ((w > 0).sum(-1) == topk).all()  # exactly the top-k heads carry weight
        # per token: different tokens are routed differently
        assert (w - w[:, :1]).abs().amax() > 1e-4


def test_routing_is_causal():
    torch.manual_seed(0)
    model = build_backbone(tiny()).eval()
    x = tokens(2, 10)
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 5) % VOCAB
    torch.testing.assert_close(model(x).logits[:, :7], model(y).logits[:, :7])


def test_entropy_regulariser_changes_gradients_and_anneals():
    x = tokens()
    grads = {}
    for weight in (0.0, 0.5):
        torch.manual_seed(0)
        model = build_backbone(tiny(route_entropy_weight=weight, route_entropy_anneal_steps=4)).train()
        out = model(x)
        loss = out.logits.float().logsumexp(-1).mean() + (out.aux_loss if out.aux_loss is not None else 0)
        loss.backward()
        grads[weight] = model.routers[0].route.weight.grad.clone()
        assert out.metrics["poh/route_entropy"] > 0
    assert not torch.allclose(grads[0.0], grads[0.5])
    torch.manual_seed(0)
    model = build_backbone(tiny(route_entropy_weight=0.5, route_entropy_anneal_steps=4)).train()
    seen = [float(model(x).metrics["poh/route_entropy_weight"]) for _ in range(6)]
    assert seen == pytest.approx([0.5, 0.375, 0.25, 0.125, 0.0, 0.0])
    assert int(model.state_dict()["route_steps"]) == 6  # checkpoints keep the schedule's place
    with torch.no_grad():  # evaluation does not move the schedule
        model(x)
    assert int(model.route_steps) == 6


@pytest.mark.parametrize(("passes", "period"), [(4, 4), (8, 4), (6, 2), (3, 1)])
def test_high_level_updates_only_every_t_passes(passes, period):
    model = build_backbone(tiny(recursion=passes, hrm_period=period))
    calls = {"slow": 0, "fast": 0}
    model.routers[0].slow_cell.register_forward_hook(lambda *_: calls.__setitem__("slow", calls["slow"] + 1))
    model.routers[0].fast_cell.register_forward_hook(lambda *_: calls.__setitem__("fast", calls["fast"] + 1))
    slow_states = []
    original = model.routers[0].forward

    def spy(h, fast, slow, update_slow):
        out = original(h, fast, slow, update_slow)
        slow_states.append(out.slow.detach().clone())
        return out

    model.routers[0].forward = spy
    model(tokens())
    assert calls["fast"] == passes
    assert calls["slow"] == -(-passes // period)
    changed = [i for i in range(1, passes) if not torch.equal(slow_states[i], slow_states[i - 1])]
    assert changed == [i for i in range(1, passes) if i % period == 0]


def test_seed_sizes_and_depth_first_parity():
    poh = BackboneConfig(vocab_size=VOCAB, kind="poh", d_model=320, n_heads=5, n_layers=4, recursion=4)
    base = BackboneConfig(vocab_size=VOCAB, d_model=384, n_heads=6, n_layers=4)
    assert count_parameters(poh) == pytest.approx(SEED_POH, rel=0.03)
    assert count_parameters(base) == pytest.approx(SEED_BASELINE, rel=0.03)
    target = count_parameters(poh)
    with torch.device("meta"):
        matched = build_backbone(BackboneConfig(VOCAB, 312, n_layers=4, n_heads=6, parity_with=target))
    assert matched.n_layers == 4 and matched.n_heads == 6  # depth and heads kept, width moved
    assert matched.num_parameters() == pytest.approx(target, rel=0.05)


def test_parity_with_a_preset_name_needs_the_runner():
    with pytest.raises(ValueError, match="names a preset"):
        build_backbone(BackboneConfig(vocab_size=VOCAB, parity_with="poh_hrm"))


def test_poh_refuses_memory_and_bad_topk():
    with pytest.raises(ValueError, match="memory"):
        BackboneConfig(kind="poh", memory="hebbian")
    with pytest.raises(ValueError, match="route_topk"):
        BackboneConfig(kind="poh", n_heads=4, route_topk=5)
    with pytest.raises(ValueError, match="kind"):
        BackboneConfig(kind="mamba")


def test_cnn_encoder_shapes_and_wall_image():
    task = MazeTask([MazeLevel("5x5", 5, 5)])
    batch = task.sample_batch(4, generator=torch.Generator().manual_seed(1))
    image = wall_image(batch.tokens, 5, 5)
    assert image.shape == (4, 1, 11, 11)
    assert (image[:, 0, 0] == 1).all() and (image[:, 0, 1::2, 1::2] == 0).all()  # border walls, open cells
    # a perfect 5x5 maze joins its 25 cells with 24 passages: 24 open gaps in the image
    gaps = (image[:, 0] == 0).sum(dim=(1, 2)) - 25
    assert (gaps == 24).all()
    encoder = MazeGridEncoder(48, 5, 5)
    assert encoder(batch.tokens).shape == (4, 1, 48)
    assert [m.out_channels for m in encoder.cnn if hasattr(m, "out_channels")] == [16, 32]
    for kind in ("poh", "transformer"):
        model = build_backbone(tiny(kind=kind, maze_encoder=True, maze_shape=[5, 5], recursion=1))
        out = model(batch.tokens)
        assert out.logits.shape == (*batch.tokens.shape, VOCAB) and out.state is None
    with pytest.raises(ValueError, match="maze_shape"):
        BackboneConfig(maze_encoder=True)
