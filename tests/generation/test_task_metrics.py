"""The supervised sampler and the language-model metrics."""

import math

import pytest
import torch

from envs.generation.corpus import default_corpus
from envs.generation.metrics import bits_per_char, distinct_n
from envs.generation.task import TextQualityTask
from envs.generation.tokens import PAD_ID, VOCAB_SIZE, decode, encode


def test_task_token_contract():
    task = TextQualityTask()
    assert task.vocab_size == VOCAB_SIZE == PAD_ID + 1 == 257
    assert task.action_token_ids == list(range(256))
    assert decode(encode("héllo")) == "héllo"


def test_sample_batch_is_next_byte_prediction_on_the_train_split():
    task = TextQualityTask()
    batch = task.sample_batch(8, generator=torch.Generator().manual_seed(0), level="p64-c32")
    assert batch.tokens.shape == batch.targets.shape == batch.loss_mask.shape == (8, 96)
    assert torch.equal(batch.tokens[:, 1:], batch.targets[:, :-1]) and batch.loss_mask.all()
    train = default_corpus().text("train").encode()
    for row in range(8):
        assert bytes(batch.tokens[row].tolist() + batch.targets[row, -1:].tolist()) in train
    again = task.sample_batch(8, generator=torch.Generator().manual_seed(0), level="p64-c32")
    assert torch.equal(again.tokens, batch.tokens)
    assert task.sample_batch(2, level="p16-c256").tokens.shape == (2, 256)  # capped at the window
    with pytest.raises(ValueError, match="batch_size"):
        task.sample_batch(0)


def test_bits_per_char_scores_every_byte_exactly_once():
    data = encode(default_corpus().text("validation"))[:3000]
    counts = torch.bincount(data, minlength=256).float() + 0.5
    log_probs = (counts / counts.sum()).log()

    def unigram(tokens):
        return log_probs.expand(*tokens.shape, 256)

    expected = float(-log_probs[data[1:]].sum()) / math.log(2) / (len(data) - 1)
    for context, stride in ((64, None), (100, 7), (256, 256)):
        result = bits_per_char(unigram, context=context, stride=stride, max_bytes=3000)
        assert result == pytest.approx(expected, rel=1e-5)
    assert bits_per_char(lambda t: torch.zeros(*t.shape, 257), max_bytes=1000) == pytest.approx(
        math.log2(257)
    )


def test_bits_per_char_reads_backbone_logits_and_restores_train_mode():
    class Output:
        def __init__(self, logits):
            self.logits = logits

    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(256))

        def forward(self, tokens):
            assert not self.training
            return Output(self.bias.expand(*tokens.shape, 256))

    model = Uniform().train()
    assert bits_per_char(model, context=32, max_bytes=500) == pytest.approx(8.0)
    assert model.training
    with pytest.raises(ValueError, match="logits of shape"):
        bits_per_char(lambda t: torch.zeros(t.shape[0], 256), max_bytes=100)
    with pytest.raises(ValueError, match="context"):
        bits_per_char(model, context=1)


def test_distinct_n_across_a_batch():
    tokens = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4], [1, 2, 3, 4, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    assert float(distinct_n(tokens, n=4)) == pytest.approx(4 / 6)
    assert float(distinct_n(tokens, n=1, lengths=torch.tensor([4, 2]))) == pytest.approx(4 / 6)


def test_a_bigram_model_counted_from_sample_batch_lowers_validation_bits_per_char():
    task = TextQualityTask()
    vocab = task.vocab_size
    counts = torch.ones(vocab * vocab)
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        batch = task.sample_batch(32, generator=generator, level="p64-c64")
        pairs = (batch.tokens * vocab + batch.targets)[batch.loss_mask]
        counts += torch.bincount(pairs, minlength=vocab * vocab)
    log_probs = counts.reshape(vocab, vocab).log()

    def bigram(tokens):
        return log_probs[tokens]

    # uniform logits give 8.0 bits and a unigram model about 4.6 on this text; a bigram model does better
    assert bits_per_char(bigram, context=64, max_bytes=8192) < 4.3
