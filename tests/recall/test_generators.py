"""Generators and oracles: answers are right, levels have the promised sizes, the needle is where asked."""

import pytest
import torch

from envs.recall.associative import AssociativeLevel
from envs.recall.copy_task import CopyLevel, RepeatCopyLevel
from envs.recall.needle import NEEDLE_PREFIX, QUESTION, NeedleLevel, needle_offset
from envs.recall.task import RecallTask
from envs.recall.tokens import FILL, PAD, SEP, count_token
from tests.recall.oracle_agent import FAMILIES


def full_sequences(batch) -> torch.Tensor:
    return torch.cat([batch.tokens[:, :1], batch.targets], dim=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_oracle_answers_every_answer_token(family):
    task = RecallTask(family)
    gen = torch.Generator().manual_seed(0)
    for level in range(min(4, task.num_levels)):
        batch = task.sample_batch(8, generator=gen, level=level)
        sequences = full_sequences(batch)
        for row in range(8):
            tokens = sequences[row].tolist()
            answers = (batch.loss_mask[row].nonzero().flatten() + 1).tolist()
            assert len(answers) == task.ladder[level].num_answers
            for position in answers:
                assert task.oracle_next_token(tokens[:position]) == tokens[position]


@pytest.mark.parametrize("family", FAMILIES)
def test_levels_produce_the_promised_lengths(family):
    task = RecallTask(family)
    for index, level in enumerate(task.ladder):
        if level.sequence_length > 5000:
            continue
        batch = task.sample_batch(3, level=index)
        assert batch.tokens.shape == (3, level.sequence_length - 1)
        assert (batch.targets != PAD).all()
        assert (batch.loss_mask.sum(1) == level.num_answers).all()
        # Every answer sits at the end of the sequence or, for MQAR, right after a query key.
        assert batch.loss_mask[:, -1].all()


def test_copy_layout():
    task = RecallTask("repeat_copy", levels=[RepeatCopyLevel("r", length=5, vocab=3, repeats=3)])
    seq = full_sequences(task.sample_batch(4))
    prompt, rest = seq[:, :5], seq[:, 7:]
    assert (seq[:, 5] == SEP).all() and (seq[:, 6] == count_token(3)).all()
    assert (prompt < 3).all()
    assert torch.equal(rest, prompt.repeat(1, 3))


def test_associative_keys_are_distinct_and_queries_follow_the_gap():
    level = AssociativeLevel("a", pairs=6, vocab=16, queries=3, length=40)
    seq = full_sequences(RecallTask("associative", levels=[level]).sample_batch(16))
    keys, values = seq[:, 0:12:2], seq[:, 1:12:2]
    assert (keys < 8).all() and (values >= 8).all() and (values < 16).all()
    assert all(len(set(row.tolist())) == 6 for row in keys)
    assert (seq[:, 12:34] == FILL).all()
    queried = seq[:, 34::2]
    assert all(
        len(set(row.tolist())) == 3 and set(row.tolist()) <= set(k.tolist()) for row, k in zip(queried, keys)
    )


@pytest.mark.parametrize("filler", ["corpus", "random"])
@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 1.0])
def test_needle_occurs_once_at_the_requested_depth(filler, depth):
    level = NeedleLevel("n", context_bytes=2048, depth=depth, filler=filler)
    seq = full_sequences(RecallTask("needle", levels=[level]).sample_batch(6))
    expected = needle_offset(2048, depth, 4)
    for row in seq.tolist():
        data = bytes(row)
        assert data.count(NEEDLE_PREFIX) == 1
        assert data.index(NEEDLE_PREFIX) == expected
        key = data[expected + len(NEEDLE_PREFIX) : expected + len(NEEDLE_PREFIX) + 4]
        assert data[2048 : 2048 + len(QUESTION)] == QUESTION
        assert data.endswith(QUESTION + key) and key.isdigit()


def test_needle_random_depth_spreads_over_the_haystack():
    seq = full_sequences(RecallTask("needle", levels=[NeedleLevel("n", 1024)]).sample_batch(64))
    offsets = torch.tensor([bytes(row).index(NEEDLE_PREFIX) for row in seq.tolist()])
    assert offsets.min() < 250 and offsets.max() > 750


def test_needle_default_ladder_reaches_64k_and_samples_it():
    task = RecallTask("needle")
    assert task.ladder[-1].context_bytes >= 65536
    batch = task.sample_batch(1, level=task.num_levels - 1)
    assert batch.tokens.shape[1] == task.ladder[-1].sequence_length - 1
    assert bytes(full_sequences(batch)[0].tolist()).count(NEEDLE_PREFIX) == 1


def test_sample_batch_device_and_seed():
    task = RecallTask("copy", level=4)
    a = task.sample_batch(5, generator=torch.Generator().manual_seed(1))
    b = task.sample_batch(5, generator=torch.Generator().manual_seed(1), device="cpu")
    assert (
        torch.equal(a.tokens, b.tokens) and a.tokens.dtype == torch.int64 and a.loss_mask.dtype == torch.bool
    )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RecallTask("copies"), "Unknown recall family"),
        (lambda: RecallTask("copy", level="len3-v2"), "Unknown level name"),
        (lambda: CopyLevel("c", length=0, vocab=4), "length"),
        (lambda: CopyLevel("c", length=4, vocab=300), "vocab"),
        (lambda: RepeatCopyLevel("c", 2, 4, repeats=17), "repeats"),
        (lambda: AssociativeLevel("a", pairs=9, vocab=16, queries=2, length=64), "pairs"),
        (lambda: AssociativeLevel("a", pairs=4, vocab=16, queries=4, length=10), "length"),
        (lambda: NeedleLevel("n", 1024, depth=1.5), "depth"),
        (lambda: NeedleLevel("n", 1024, filler="lorem"), "filler"),
        (lambda: NeedleLevel("n", 10**7), "filler='random'"),
        (lambda: RecallTask("copy").sample_batch(0), "batch_size"),
        (
            lambda: RecallTask("copy", levels=[CopyLevel("c", 2, 2)]).set_level(
                {"name": "big", "length": 9, "vocab": 2}
            ),
            "levels=",
        ),
        (
            lambda: RecallTask("copy", levels=[CopyLevel("c", 2, 2)]).set_level(CopyLevel("v", 2, 8)),
            "action tokens",
        ),
        (lambda: RecallTask("copy").set_level({"name": "x", "size": 3}), "Unknown level field"),
    ],
)
def test_bad_input_raises_a_clear_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_custom_level_that_fits_is_appended():
    task = RecallTask("copy")
    task.set_level({"name": "mine", "length": 3, "vocab": 5})
    assert task.level.name == "mine" and task.level_index == task.num_levels - 1
    assert task.sample_batch(2).tokens.shape == (2, 6)
