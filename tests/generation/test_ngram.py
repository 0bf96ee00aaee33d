"""The reference n-gram scorer: a proper distribution, a sensible judge, an atomic weights_only cache."""

import pytest
import torch

from envs.generation import scorer as scorer_module
from envs.generation.corpus import default_corpus
from envs.generation.ngram import NGramScorer, _discounts
from envs.generation.scorer import reference_bits_per_byte, reference_scorer, scorer_cache_path
from envs.generation.tokens import PAD_ID, encode
from foundation.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def scorer():
    return NGramScorer.fit(default_corpus().text("train"), order=6)


@pytest.mark.parametrize(
    "context", ["", "T", "The quick brown fox jumps over the ", "\x00\x01zq#~", "def f(x):\n"]
)
def test_next_byte_probabilities_sum_to_one(scorer, context):
    probs = scorer.next_byte_probs(context)
    assert probs.shape == (256,)
    assert (probs > 0).all()
    assert abs(float(probs.double().sum()) - 1.0) < 1e-4


def test_token_bits_agree_with_next_byte_probs_and_ignore_padding(scorer):
    text = encode("The return statement leaves the current function call.")
    bits = scorer.token_bits(text[None])[0]
    for t in (1, 7, 30, len(text) - 1):
        probs = scorer.next_byte_probs(text[:t])
        assert torch.isclose(bits[t], -torch.log2(probs[text[t]]), atol=1e-4)
    padded = torch.cat([text, torch.full((9,), PAD_ID)])[None]
    padded_bits = scorer.token_bits(padded)[0]
    assert torch.allclose(padded_bits[: len(text)], bits) and (padded_bits[len(text) :] == 0).all()
    late = scorer.token_bits(text[None], start=10)[0]
    assert (late[:10] == 0).all() and torch.isclose(
        late[10], -torch.log2(scorer.next_byte_probs(b"")[text[10]])
    )
    assert torch.allclose(scorer.token_bits(text[None], last_only=True), bits[-1:])


def test_scorer_ranks_real_above_shuffled_above_random(scorer):
    held_out = encode(default_corpus().text("validation"))
    generator = torch.Generator().manual_seed(0)
    starts = torch.randint(0, len(held_out) - 256, (64,), generator=generator)
    real = held_out[starts[:, None] + torch.arange(256)]
    shuffled = real[:, torch.randperm(256, generator=generator)]
    random = torch.randint(0, 256, (64, 256), generator=generator)
    real_bpb, shuffled_bpb, random_bpb = (scorer.bits_per_byte(x) for x in (real, shuffled, random))
    assert (real_bpb < shuffled_bpb).all() and (shuffled_bpb < random_bpb).all()
    assert float(real_bpb.mean()) < 3.0 < float(shuffled_bpb.mean()) < 8.0 < float(random_bpb.mean())


def test_bad_orders_and_tiny_corpora_raise():
    with pytest.raises(ValueError, match="order"):
        NGramScorer.fit("some text " * 100, order=8)
    with pytest.raises(ValueError, match="too few"):
        NGramScorer.fit("tiny", order=5)
    with pytest.raises(ValueError, match="too small or too repetitive"):
        NGramScorer.fit("abcdefgh" * 200, order=5)


def test_sparse_lower_order_count_of_counts_fall_back_to_absolute_discounts():
    """Python 3.12's embedded corpus gives order 1 the count-of-counts [12, 4, 2, 0]: it must still fit."""
    counts = torch.tensor([1] * 12 + [2] * 4 + [3] * 2 + [9] * 30)
    lower = _discounts(counts, order=1, max_order=6)
    assert (
        lower.shape == (4,)
        and bool((lower[1:] > 0).all())
        and bool((lower[1:] < torch.tensor([1, 2, 3])).all())
    )
    no_singletons = torch.tensor([2] * 5 + [5] * 40)
    assert torch.equal(
        _discounts(no_singletons, order=1, max_order=6), torch.tensor([0.0, 0.5, 1.0, 1.5]).double()
    )
    with pytest.raises(ValueError, match="too small or too repetitive"):
        _discounts(no_singletons, order=6, max_order=6)


def test_scorer_cache_is_written_reloaded_and_repaired(tmp_path, monkeypatch):
    corpus = default_corpus()
    monkeypatch.setattr(scorer_module, "_MEMO", {})
    fitted = reference_scorer(corpus, order=4, cache_dir=tmp_path)
    path = scorer_cache_path(corpus, 4, tmp_path)
    assert path.is_file() and path.parent.parent == tmp_path
    assert load_checkpoint(path)["order"] == 4
    monkeypatch.setattr(scorer_module, "_MEMO", {})
    loaded = reference_scorer(corpus, order=4, cache_dir=tmp_path)
    assert loaded is not fitted and all(torch.equal(a, b) for a, b in zip(loaded.alpha, fitted.alpha))
    path.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(scorer_module, "_MEMO", {})
    repaired = reference_scorer(corpus, order=4, cache_dir=tmp_path)
    assert torch.equal(repaired.unigram, fitted.unigram) and load_checkpoint(path)["order"] == 4
    assert 1.0 < reference_bits_per_byte(repaired, corpus) < 3.0


def test_default_judge_knows_english_beyond_the_cpython_docs_and_loads_without_harvesting(monkeypatch):
    from envs.generation import english
    from envs.generation.english import JUDGE_DOMAINS, domain_documents

    monkeypatch.setattr(scorer_module, "_MEMO", {})  # another test folder may have memoised it elsewhere
    judge = reference_scorer()
    docs_only = reference_scorer(domains=())
    licences = "\n\n".join(domain_documents("licences"))[:20_000]  # an evaluation domain: legal English
    assert float(judge.bits_per_byte(licences)) < float(docs_only.bits_per_byte(licences)) - 0.3
    assert reference_bits_per_byte(judge) < reference_bits_per_byte(docs_only)  # better on its own docs too
    path = scorer_cache_path(default_corpus(), 6)
    assert path.is_file() and path.name.count("-") == 4  # keyed by the corpus and the domains' fingerprint

    def no_harvest(name):
        raise AssertionError(f"domain {name!r} was harvested although the judge is cached")

    monkeypatch.setattr(scorer_module, "_MEMO", {})
    monkeypatch.setattr(scorer_module, "domain_documents", no_harvest)
    cached = reference_scorer()
    assert all(torch.equal(a, b) for a, b in zip(cached.keys, judge.keys))
    assert set(JUDGE_DOMAINS).isdisjoint({*english.CALIBRATION_DOMAINS, *english.EVALUATION_DOMAINS})


def test_incremental_judge_state_equals_rescoring_the_window(scorer):
    """step_bits carries the judge's back-off state across bytes: it must equal token_bits of the whole
    text at every position, from any amount of context (none, a short prompt, a long one)."""
    generator = torch.Generator().manual_seed(3)
    text = encode(default_corpus().text("validation")[:4000])
    starts = torch.randint(0, len(text) - 80, (6,), generator=generator)
    rows = text[starts[:, None] + torch.arange(80)]
    rows[5, 40:] = torch.randint(0, 256, (40,), generator=generator)  # unseen n-grams too
    context = torch.tensor([0, 1, 2, 3, 5, 5])  # bytes of prompt each row's judge may see
    prompt = 20
    full = scorer.token_bits(rows, start=prompt - context)
    recent = torch.zeros(6, dtype=torch.long)
    for j in range(prompt - scorer.order + 1, prompt):
        recent = recent * 256 + torch.where(j >= prompt - context, rows[:, j], 0)
    gammas = scorer.context_gammas(recent, context)
    available = context.clone()
    for t in range(prompt, 80):
        recent = (recent * 256 + rows[:, t]) % 256**scorer.order
        available = (available + 1).clamp(max=scorer.order)
        bits, gammas = scorer.step_bits(recent, available, gammas)
        assert torch.allclose(bits, full[:, t], atol=1e-5), t
