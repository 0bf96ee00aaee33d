"""Needle episodes among the generation runner's supervised batches (``task.needle_mix``, issue 21)."""

from __future__ import annotations

import math

import pytest
import torch

from curricula.sampler import CurriculumSampler
from curricula.schedules import FixedSchedule
from envs.generation.task import NEEDLE_KEY_DIGITS, NEEDLE_MIN_HAYSTACK, TextQualityTask
from envs.generation.tokens import PAD_ID
from envs.recall import needle as needle_module
from envs.recall.needle import NEEDLE_PREFIX, QUESTION, needle_oracle
from foundation import derive_seed, make_generator
from runners import generation
from runners.cross_eval import needle_levels, needle_scores
from runners.ddp import DistInfo
from runners.generation import NeedleMix
from tests.runners.helpers import compose_config

WINDOW = 200


def test_a_needle_window_is_the_evaluations_episode_from_its_first_byte_scored_on_the_key_alone():
    task = TextQualityTask(train_window=WINDOW)
    batch = task.needle_batch(64, "cpu", torch.Generator().manual_seed(3))
    assert batch.tokens.shape == batch.targets.shape == batch.loss_mask.shape == (64, WINDOW)
    assert batch.loss_mask.sum(1).tolist() == [NEEDLE_KEY_DIGITS] * 64
    shortest, longest = task.needle_haystack_range()
    assert (shortest, longest) == (NEEDLE_MIN_HAYSTACK, WINDOW + 1 - len(QUESTION) - NEEDLE_KEY_DIGITS)
    haystacks, depths = [], []
    for tokens, targets, mask in zip(*batch.parts(), strict=True):
        (answer,) = torch.nonzero(mask).flatten()[:1].tolist()
        haystack = answer + 1 - len(QUESTION)  # the input byte before the first key digit ends the question
        assert shortest <= haystack <= longest
        data = bytes(tokens[:haystack].tolist())
        assert bytes(tokens[haystack : answer + 1].tolist()) == QUESTION
        where = data.index(NEEDLE_PREFIX)
        key = data[where + len(NEEDLE_PREFIX) : where + len(NEEDLE_PREFIX) + NEEDLE_KEY_DIGITS]
        # what the evaluation's oracle answers at each scored byte is the target there
        for t in range(answer, answer + NEEDLE_KEY_DIGITS):
            assert int(targets[t]) == needle_oracle(tokens[: t + 1].tolist()) == key[t - answer]
        assert (targets[~mask] == PAD_ID).all()  # nothing else is scored
        assert (tokens[answer + NEEDLE_KEY_DIGITS + 1 :] == PAD_ID).all()  # padding after the key
        haystacks.append(haystack)
        depths.append(where / max(haystack - len(NEEDLE_PREFIX) - NEEDLE_KEY_DIGITS - 1, 1))
    assert max(haystacks) - min(haystacks) > (longest - shortest) / 2  # haystacks of every size
    assert min(depths) < 0.2 and max(depths) > 0.8  # needles at every depth


def test_haystacks_are_log_uniform_up_to_the_2899_bytes_of_the_seeds_check_in_4096_byte_windows():
    """Each doubling equally likely: as many 64-128-byte haystacks as 2,048-4,046-byte ones."""
    task = TextQualityTask(train_window=4096)
    batch = task.needle_batch(600, "cpu", torch.Generator().manual_seed(0))
    haystack = batch.loss_mask.float().argmax(1) + 1 - len(QUESTION)
    assert int(haystack.min()) >= 64 and int(haystack.max()) <= 4046
    octave = 600 * math.log(2) / math.log(4047 / 64)  # ~100 a doubling
    short, long = int((haystack < 128).sum()), int((haystack >= 2048).sum())
    assert (
        abs(short - octave) < 4 * octave**0.5
        and abs(long - 600 * math.log(4047 / 2048) / math.log(4047 / 64)) < 40
    )
    assert int((haystack >= 2899).sum()) > 20  # the seed's check is inside the trained range


def test_a_window_too_short_for_an_episode_names_the_fix():
    with pytest.raises(ValueError, match=r"task\.train_window >= 75 or task\.needle_mix=0"):
        TextQualityTask(train_window=74).needle_batch(2, "cpu")
    assert TextQualityTask(train_window=75).needle_batch(2, "cpu").tokens.shape == (2, 75)


def _mixed(mix: float, seed: int = 0) -> tuple[NeedleMix, CurriculumSampler, TextQualityTask]:
    task = TextQualityTask(train_window=WINDOW)
    inner = CurriculumSampler(task, _schedule(task), seed)
    return NeedleMix(inner, task, mix, seed), inner, task


def _schedule(task: TextQualityTask) -> FixedSchedule:
    return FixedSchedule(task.num_levels, 0)


@pytest.mark.parametrize("mix", [0.1, 0.5])
def test_needle_batches_come_at_the_stated_rate_and_are_needles_throughout(mix):
    mixed, _, _ = _mixed(mix)
    generator = torch.Generator().manual_seed(5)
    draws, needles = 600, 0
    for _ in range(draws):
        scored = mixed.sample_batch(4, "cpu", generator).loss_mask.sum(1).tolist()
        needles += mixed.last_was_needle
        assert scored == ([NEEDLE_KEY_DIGITS] * 4 if mixed.last_was_needle else [WINDOW] * 4)
    assert mixed.needle_batches == needles
    assert abs(needles - draws * mix) < 4 * (draws * mix * (1 - mix)) ** 0.5  # within 4 standard deviations


def test_the_text_batches_between_needle_batches_are_unchanged():
    """With the mix, each text batch is the text-only sampler's batch from the same generator state."""
    mixed, _, task = _mixed(0.5, seed=2)
    reference = CurriculumSampler(task, _schedule(task), 2)
    generator = torch.Generator().manual_seed(9)
    compared = 0
    for _ in range(40):
        before = generator.get_state()
        batch = mixed.sample_batch(3, "cpu", generator)
        if mixed.last_was_needle:
            continue
        expected = reference.sample_batch(3, "cpu", torch.Generator().set_state(before))
        assert torch.equal(batch.tokens, expected.tokens) and torch.equal(batch.targets, expected.targets)
        compared += 1
    assert compared > 5


def test_the_mix_state_resumes_its_coins_and_counts():
    mixed, _, _ = _mixed(0.5, seed=4)
    generator = torch.Generator().manual_seed(1)
    for _ in range(7):
        mixed.sample_batch(2, "cpu", generator)
    state = mixed.state_dict()
    coming = []
    for _ in range(10):
        mixed.sample_batch(2, "cpu", generator)
        coming.append(mixed.last_was_needle)
    resumed, _, _ = _mixed(0.5, seed=4)
    resumed.load_state_dict(state)
    again = []
    for _ in range(10):
        resumed.sample_batch(2, "cpu", generator)
        again.append(resumed.last_was_needle)
    assert again == coming and resumed.needle_batches == sum(coming) + state["needle_mix"]["needle_batches"]


def _seeds_of_needle_draws(monkeypatch) -> list[int]:
    """Records the initial seed of every generator ``generate_needle`` draws with."""
    seen: list[int] = []
    real = needle_module.generate_needle

    def spy(params, width, max_answers, generator, *args, **kwargs):
        seen.append(generator.initial_seed())
        return real(params, width, max_answers, generator, *args, **kwargs)

    monkeypatch.setattr(needle_module, "generate_needle", spy)
    monkeypatch.setattr("envs.generation.task.generate_needle", spy)
    monkeypatch.setattr("envs.recall.families.generate_needle", spy)
    return seen


def test_training_needles_never_come_from_the_evaluations_stream(monkeypatch, tmp_path):
    """The evaluation seeds a bare generator with its seed (0 by default); the runner's needle windows
    come from the trainer's ``agent/supervised`` stream, the coins from ``generation/needle_mix``."""
    seen = _seeds_of_needle_draws(monkeypatch)
    levels = needle_levels([128], [0.0, 1.0])
    for seed in range(3):
        needle_scores(lambda t: torch.zeros(*t.shape, 257), levels, 4, torch.device("cpu"), seed=seed)
    evaluation = set(seen)
    assert evaluation == {0, 1, 2}, "the spy must see the evaluation's own draws"
    seen.clear()
    cfg = compose_config(
        "generation",
        ["task.train_window=128", "task.needle_mix=1.0", "engine.interleave.rl_steps=0", "seed=0"],
    )
    experiment = generation.build_experiment(cfg, _single_process())
    assert isinstance(experiment.sampler, NeedleMix)
    for step in range(3):
        metrics = experiment.train_step(step).metrics
        # a needle step's loss is the key's, logged apart from the text steps' loss
        assert {"needle_loss", "needle_accuracy"} <= set(metrics) and "loss" not in metrics
    assert set(seen) == {derive_seed(0, "agent/supervised")} and not set(seen) & evaluation
    assert (
        experiment.sampler.coins.initial_seed() == make_generator(0, "generation/needle_mix").initial_seed()
    )


def _single_process() -> DistInfo:
    return DistInfo(device=torch.device("cpu"))


def test_without_the_mix_the_runner_keeps_the_text_sampler_itself():
    cfg = compose_config("generation", ["task.train_window=128"])
    assert cfg.task.needle_mix == 0.0
    experiment = generation.build_experiment(cfg, _single_process())
    assert type(experiment.sampler) is CurriculumSampler


def test_a_needle_mix_outside_0_to_1_is_refused_with_the_key():
    from runners.config import ConfigError, validate

    with pytest.raises(ConfigError, match=r"task\.needle_mix must be a number in \[0, 1\].*needle_mix=0\.25"):
        validate(compose_config("generation", ["task.needle_mix=1.5"]), "generation")
    validate(compose_config("generation", ["task.needle_mix=0.25", "task.train_window=128"]), "generation")
