"""Every backbone variant: causality, streaming equals the full sequence, gradients reach every parameter,
the engine hooks (head_scale, return_layers) work, and bad input fails clearly."""

import pytest
import torch

from agents.backbones import BackboneConfig, build_backbone
from agents.backbones.titans import NeuralMemory
from tests.backbones.helpers import VARIANTS, VOCAB, tiny


def _model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_backbone(tiny(**VARIANTS[name])).eval()


@pytest.mark.parametrize("name", VARIANTS)
def test_changing_a_token_never_changes_earlier_outputs(name):
    model = _model(name)
    tokens = torch.randint(0, VOCAB, (2, 13))
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(tokens).logits, model(changed).logits
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=1e-5, rtol=0)
    assert (a[:, 7:] - b[:, 7:]).abs().amax() > 1e-4  # and the change is seen from t on


@pytest.mark.parametrize("name", VARIANTS)
def test_streamed_chunks_equal_the_full_sequence(name):
    model = _model(name)
    tokens = torch.randint(0, VOCAB, (2, 15))
    with torch.no_grad():
        full = model(tokens).logits
        state, pieces = model.init_state(2, "cpu"), []
        for lo, hi in [(0, 6), (6, 7), (7, 13), (13, 15)]:  # odd splits cross memory chunk boundaries
            out = model(tokens[:, lo:hi], state=state)
            pieces.append(out.logits)
            state = out.state
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("length", [12, 15])  # whole memory chunks, and an unfinished one after them
def test_training_without_state_gives_the_same_outputs_and_gradients(name, length):
    model = _model(name).train()
    tokens = torch.randint(0, VOCAB, (2, length))
    runs = []
    for return_state in (True, False):
        model.zero_grad()
        out = model(tokens, return_state=return_state)
        out.logits.square().mean().backward()
        runs.append((out, {n: p.grad for n, p in model.named_parameters()}))
    (with_state, grads), (without_state, grads_without) = runs
    assert with_state.state is not None and without_state.state is None
    torch.testing.assert_close(without_state.logits, with_state.logits)
    torch.testing.assert_close(grads_without, grads)


@pytest.mark.parametrize(
    ("length", "return_state", "updates"), [(12, True, 3), (12, False, 2), (14, False, 3)]
)
def test_titans_skips_the_update_only_the_state_would_read(monkeypatch, length, return_state, updates):
    chunk_step, calls = NeuralMemory.chunk_step, []
    counted = staticmethod(lambda *args: calls.append(1) or chunk_step(*args))
    monkeypatch.setattr(NeuralMemory, "chunk_step", counted)
    model = _model("titans")  # 2 memory blocks, chunk 4
    model(torch.randint(0, VOCAB, (2, length)), return_state=return_state)
    assert len(calls) == 2 * updates


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_reach_every_parameter(name):
    model = _model(name).train()
    tokens = torch.randint(0, VOCAB, (2, 11))
    out = model(tokens)
    loss = out.logits.square().mean()
    if out.aux_loss is not None:
        loss = loss + out.aux_loss
    if out.deep_logits is not None:
        loss = loss + sum(d.square().mean() for d in out.deep_logits)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", ["transformer", "titans"])
def test_head_scale_and_layer_outputs_feed_the_engine(name):
    model = _model(name)
    tokens = torch.randint(0, VOCAB, (2, 9))
    scale = torch.ones(model.n_layers, model.n_heads, requires_grad=True)
    out = model(tokens, head_scale=scale, return_layers=True)
    assert len(out.layer_hiddens) == model.n_layers
    torch.testing.assert_close(out.layer_hiddens[-1], out.hidden)
    torch.testing.assert_close(model.output_logits(out.layer_hiddens[-1]), out.logits)
    mix = torch.softmax(torch.zeros(model.n_layers, requires_grad=True), 0)
    mixed = model.output_logits(sum(w * h for w, h in zip(mix, out.layer_hiddens)))
    mixed.sum().backward()
    assert scale.grad is not None and scale.grad.abs().sum() > 0
    with torch.no_grad():  # silencing a head changes the output
        muted = scale.detach().clone()
        muted[0, 1] = 0.0
        assert (model(tokens, head_scale=muted).logits - out.logits).abs().amax() > 1e-5


def test_encoder_is_bidirectional_and_refuses_state():
    torch.manual_seed(0)
    model = build_backbone(tiny(causal=False)).eval()
    tokens = torch.randint(0, VOCAB, (1, 8))
    changed = tokens.clone()
    changed[0, 6] = (changed[0, 6] + 1) % VOCAB
    with torch.no_grad():
        assert (model(tokens).logits[:, :6] - model(changed).logits[:, :6]).abs().amax() > 1e-4
        assert model(tokens).state is None
        with pytest.raises(ValueError, match="state=None"):
            model(tokens, state={"pos": 0, "layers": []})


def test_bad_configs_and_inputs_fail_clearly():
    with pytest.raises(ValueError, match="ffn"):
        tiny(ffn="relu")
    with pytest.raises(ValueError, match="memory"):
        tiny(memory="lstm")
    with pytest.raises(ValueError, match="n_heads"):
        tiny(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="memory_layers"):
        tiny(memory="hebbian", memory_layers=[5])
    with pytest.raises(ValueError, match="recursion"):
        tiny(act=True)
    with pytest.raises(ValueError, match="causal"):
        tiny(memory="titans", causal=False)
    with pytest.raises(ValueError, match="Unknown BackboneConfig field"):
        build_backbone({"d_model": 32, "n_layerz": 2})
    model = build_backbone(tiny())
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.rand(2, 5))
    with pytest.raises(ValueError, match="head_scale"):
        model(torch.zeros(1, 4, dtype=torch.long), head_scale=torch.ones(3, 3))


def test_config_accepts_hydra_style_memory_layers():
    assert tiny(memory="hebbian", memory_layers="0,1").memory_layer_indices() == (0, 1)
    assert tiny(memory="hebbian", memory_layers="none").memory_layer_indices() == ()
    assert BackboneConfig(memory="none").memory is None


def test_hydra_structured_config_builds_a_backbone():
    from omegaconf import OmegaConf

    conf = OmegaConf.merge(
        OmegaConf.structured(BackboneConfig),
        OmegaConf.create(
            {"vocab_size": VOCAB, "d_model": 32, "n_heads": 4, "memory": "hebbian", "memory_layers": [1]}
        ),
    )
    model = build_backbone(OmegaConf.to_object(conf))
    assert model.cfg.memory_layer_indices() == (1,)
    assert model.blocks[0].memory is None and model.blocks[1].memory is not None
