"""backbone.kind=hf: a tiny, randomly initialised GPT-2 that the test saves itself, loaded offline."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from agents.backbones import BackboneConfig, build_backbone  # noqa: E402
from agents.backbones.hf import byte_level_alphabet, byte_token_ids  # noqa: E402
from agents.engine import EngineConfig, InferenceEngine  # noqa: E402

VOCAB = 257  # the generation family's bytes + PAD


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    """A 2-block GPT-2 with random weights, saved to a folder (nothing downloaded)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=300, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    model = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(folder)
    return folder, model


def _backbone(folder):
    cfg = BackboneConfig(kind="hf", hf_model=str(folder), hf_token_map="identity", vocab_size=VOCAB)
    return build_backbone(cfg).eval()


def test_logits_are_the_models_at_the_mapped_ids_and_streaming_equals_the_whole(tiny_gpt2):
    folder, reference = tiny_gpt2
    backbone = _backbone(folder)
    assert (backbone.d_model, backbone.n_layers, backbone.n_heads, backbone.vocab_size) == (32, 2, 4, VOCAB)
    tokens = torch.randint(0, VOCAB, (2, 11))
    with torch.no_grad():
        whole = backbone(tokens, return_layers=True)
        torch.testing.assert_close(whole.logits, reference(tokens).logits[..., :VOCAB])
        assert len(whole.layer_hiddens) == 2
        torch.testing.assert_close(backbone.output_logits(whole.hidden), whole.logits)
        first = backbone(tokens[:, :6])
        rest = backbone(tokens[:, 6:], first.state)
    streamed = torch.cat([first.logits, rest.logits], dim=1)
    torch.testing.assert_close(streamed, whole.logits, atol=1e-5, rtol=1e-4)


def test_head_scale_gates_heads_like_mindgyms_attention(tiny_gpt2):
    backbone = _backbone(tiny_gpt2[0])
    tokens = torch.randint(0, VOCAB, (1, 9))
    with torch.no_grad():
        plain = backbone(tokens).logits
        ones = backbone(tokens, head_scale=torch.ones(2, 4)).logits
        gated = torch.ones(2, 4)
        gated[1, 2] = 0.0
        changed = backbone(tokens, head_scale=gated).logits
    torch.testing.assert_close(ones, plain)
    assert (changed - plain).abs().amax() > 1e-4
    with pytest.raises(ValueError, match="n_layers, n_heads"):
        backbone(tokens, head_scale=torch.ones(3, 4))


def test_the_inference_engine_reads_it_and_training_reaches_its_weights(tiny_gpt2):
    backbone = _backbone(tiny_gpt2[0]).train()
    engine = InferenceEngine.for_backbone(backbone, list(range(256)), EngineConfig())
    tokens = torch.randint(0, 256, (3, 8))
    dist, _ = engine(backbone, tokens, torch.full((3,), 8))
    assert dist.probs.shape == (3, 256)
    out = backbone(tokens, return_state=False)
    loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
    loss.backward()
    assert backbone.model.transformer.wte.weight.grad is not None


def test_byte_map_reads_a_byte_level_tokenizer():
    class ByteLevelVocab:  # the part of a GPT-2 tokenizer the map reads
        pad_token_id, eos_token_id = None, 7

        def get_vocab(self):
            return {char: 1000 + b for b, char in byte_level_alphabet().items()}

    ids = byte_token_ids(ByteLevelVocab(), VOCAB)
    assert ids[:256] == [1000 + b for b in range(256)] and ids[256] == 7
    assert len(set(byte_level_alphabet().values())) == 256


def test_a_missing_model_is_refused_without_downloading(tmp_path):
    cfg = BackboneConfig(kind="hf", hf_model=str(tmp_path / "none"), vocab_size=VOCAB)
    with pytest.raises(ValueError, match="nothing is downloaded"):
        build_backbone(cfg)
    with pytest.raises(ValueError, match="hf_model"):
        BackboneConfig(kind="hf", vocab_size=VOCAB)


def test_the_generation_runner_trains_and_evaluates_it(tiny_gpt2, tmp_path):
    from runners import generation
    from runners.app import execute
    from tests.runners.helpers import compose_config

    overrides = ["backbone.kind=hf", f"backbone.hf_model={tiny_gpt2[0]}", "backbone.hf_token_map=identity"]
    cfg = compose_config("generation", [*overrides, "trainer.steps=2"])
    report = execute(cfg, "generation", generation.build_experiment, tmp_path)
    assert report["steps_done"] == 2 and report["final"]["bits_per_char"] > 0
