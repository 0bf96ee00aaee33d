"""The reward measured against human text: the calibration equals the envs' bookkeeping, bands punish both
too repetitive and too random text, the threshold passes the calibrated share of human text, no component is
constant and degenerate text cannot outscore word salad."""

import pytest
import torch

from bench.judge_quality import variants_of
from envs.generation import calibration as calibration_module
from envs.generation.calibration import (
    band_penalty,
    cached_calibration,
    human_windows,
    is_word_start,
    measure,
    shrunk_start_bits,
)
from envs.generation.corpus import default_corpus
from envs.generation.reward import RewardConfig, TextScore, score_continuations
from envs.generation.task import TextQualityTask
from foundation.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def task():
    return TextQualityTask()


def test_vectorised_calibration_equals_the_envs_byte_by_byte_bookkeeping(task):
    text = default_corpus().text("validation")[:20_000]
    profile = measure(task.scorer, text)
    windows = human_windows(text)[:6]
    rows, length = len(windows), windows.shape[1] - 64
    state = TextScore(task.scorer, None, RewardConfig(), rows, length, torch.device("cpu"))
    everyone = torch.ones(rows, dtype=torch.bool)
    state.reset(everyone, windows[:, 64 - state.context : 64], torch.full((rows,), state.context),
                torch.full((rows,), length))
    for t in range(length):
        state.add(windows[:, 64 + t], everyone)
        raw = state.raw()
        assert torch.allclose(raw["bits"], profile.bits[:6, t], atol=1e-4)
        assert torch.equal(raw["starts"].int(), profile.starts[:6, t])
        assert torch.allclose(raw["start_bits"], profile.start_bits[:6, t], atol=1e-4)
        assert torch.allclose(raw["distinct"], profile.distinct[:6, t])
        assert torch.allclose(raw["seq_rep"], profile.seq_rep[:6, t])


def test_band_penalty_is_zero_inside_and_minus_one_at_either_extreme():
    low, high = torch.tensor(0.4), torch.tensor(0.6)
    values = torch.tensor([0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0])
    assert band_penalty(values, low, high).tolist() == pytest.approx([-1, -0.5, 0, 0, 0, -0.5, -1])
    assert band_penalty(torch.tensor([0.0, 0.5]), torch.tensor(0.0), torch.tensor(0.0)).tolist() == [0, -0.5]


def test_word_starts_are_non_space_bytes_after_whitespace():
    text = torch.tensor(list(b"a b\n\tcd  e.(f"))
    previous = torch.cat([torch.tensor([256]), text[:-1]])  # 256: no byte before the first
    starts = is_word_start(previous, text)
    assert [chr(int(b)) for b in text[starts]] == ["b", "c", "e"]


def test_word_order_needs_evidence_before_it_pays():
    """Four pseudo word starts at 8 bits: none -> 8 bits, four at 2 bits -> halfway, many -> near the mean."""
    bits = shrunk_start_bits(torch.tensor([0.0, 2.0, 2.0]), torch.tensor([0, 4, 400]))
    assert bits.tolist() == pytest.approx([8.0, 5.0, 2.0 + 6.0 * 4 / 404])


def test_word_order_separates_real_text_from_its_word_salad_more_than_fluency(task):
    """On CPython-doc windows: shuffling the words costs the word starts far more of their fluency than it
    costs all bytes, and a text with no word start gets word order 0 (no credit for avoiding spaces)."""
    data = default_corpus().text("test").encode()
    windows = torch.tensor(list(data[: (len(data) // 320) * 320])).view(-1, 320)[:60]
    variants = variants_of(windows[:, 64:].to(torch.uint8), seed=3)
    real, salad = (
        score_continuations(task.scorer, task.calibration, windows[:, :64], variants[name])
        for name in ("real text", "words shuffled")
    )
    word_gap = float((real["word_order"] - salad["word_order"]).mean())
    assert word_gap > 2 * float((real["fluency"] - salad["fluency"]).mean()) > 0
    assert (real["word_start_bits"] < salad["word_start_bits"]).float().mean() > 0.95
    no_space = torch.tensor(list(b"abcdefghijklmnopqrstuvwxyz" * 2))[None]
    out = score_continuations(task.scorer, task.calibration, windows[:1, :64], no_space)
    assert float(out["word_order"]) == 0.0 and float(out["word_start_bits"]) == 0.0


def test_threshold_passes_the_calibrated_share_of_human_text(task):
    calibration = task.calibration
    config = task.reward_config
    threshold = calibration.threshold(config.weights, config.success_fraction)
    parts = calibration.human_components()
    score = sum(config.weights[k] * parts[k] for k in parts)
    for t in (16, 64, 256):
        share = float((score[:, t - 1] >= threshold[t]).float().mean())
        assert share == pytest.approx(config.success_fraction, abs=0.01)
    other = calibration.threshold(config.weights, 0.5)
    assert (other[1:] >= threshold[1:]).all()


def test_no_default_component_is_constant_and_length_is_zero_for_full_text(task):
    text = torch.tensor(list(default_corpus().text("test").encode()[:64 * 40])).view(40, 64)
    variants = variants_of(text[:, 32:].to(torch.uint8), seed=1)
    prompts = text[:, :32].repeat(len(variants), 1)
    scores = score_continuations(task.scorer, task.calibration, prompts, torch.cat(list(variants.values())))
    for name in ("fluency", "word_order", "diversity", "repetition"):
        assert scores[name].unique().numel() > 3, name
    assert (scores["length"] == 0).all()  # varies only when the agent stops early (tested in test_reward)


def test_degenerate_text_scores_below_word_salad_and_never_succeeds(task):
    """On CPython-doc windows the reward was not calibrated on: loops, random bytes, random letters and
    shuffled bytes all lose to shuffled words, and none is counted as a success."""
    data = default_corpus().text("test").encode()
    windows = torch.tensor(list(data[: (len(data) // 320) * 320])).view(-1, 320)[:120]
    variants = variants_of(windows[:, 64:].to(torch.uint8), seed=2)
    scores = {
        name: score_continuations(task.scorer, task.calibration, windows[:, :64], texts)
        for name, texts in variants.items()
    }
    salad = scores["words shuffled"]["score"].mean()
    assert (scores["real text"]["score"] > scores["words shuffled"]["score"]).float().mean() > 0.95
    for name in ("bytes shuffled", "one phrase repeated", "random bytes", "random letters"):
        assert scores[name]["score"].mean() < salad, name
        assert scores[name]["success"].float().mean() <= 0.01, name
    assert scores["real text"]["success"].float().mean() >= 0.8


def test_calibration_cache_verifies_and_remeasures_a_corrupt_file(tmp_path, monkeypatch, task):
    monkeypatch.setattr(calibration_module, "_MEMO", {})
    path = tmp_path / "calibration.pt"
    text = default_corpus().text("validation")[:8_000]
    built = cached_calibration(path, lambda: measure(task.scorer, text, source="v"))
    monkeypatch.setattr(calibration_module, "_MEMO", {})
    loaded = cached_calibration(path, lambda: pytest.fail("a good cache file is read, not re-measured"))
    assert torch.equal(loaded.bits, built.bits) and loaded.source == "v"
    save_checkpoint({"version": 0}, path)
    monkeypatch.setattr(calibration_module, "_MEMO", {})
    again = cached_calibration(path, lambda: measure(task.scorer, text, source="v"))
    assert torch.equal(again.bits, built.bits)


def test_score_continuations_refuses_a_bare_reference_bits_value(task):
    prompts, texts = torch.zeros(1, 8, dtype=torch.long), torch.full((1, 8), 97)
    with pytest.raises(TypeError, match="Calibration"):
        score_continuations(task.scorer, 1.7, prompts, texts)
    with pytest.raises(ValueError, match="calibrate with the config"):
        score_continuations(task.scorer, task.calibration, prompts, texts, RewardConfig(diversity_n=3))
