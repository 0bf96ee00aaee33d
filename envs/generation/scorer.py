"""The reference scorer (the judge) of a corpus, fitted once and cached on disk under ``$MINDGYM_CACHE``.

The judge is fitted on the corpus's training split plus, for the embedded corpus, English prose from the
installed packages (``JUDGE_DOMAINS`` of :mod:`envs.generation.english`), so it judges English rather than
one document set. The cache file is keyed by a hash of the training split, the n-gram order and the
domains' fingerprint (harvest version, Python and package versions: no harvest is needed to find the
file), written atomically with
``save_checkpoint`` and read with ``load_checkpoint`` (``weights_only=True``), so a foreign or corrupt file
runs no code; a corrupt one is refitted and replaced. Within a process, scorers are also memoised.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from pathlib import Path

from envs.generation.corpus import Corpus, default_corpus
from envs.generation.english import JUDGE_DOMAINS, domain_documents, english_fingerprint
from envs.generation.ngram import NGramScorer
from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

DEFAULT_ORDER = 6
CACHE_VERSION = 2
EMBEDDED_NAME = "embedded:pydoc_data.topics"
_MEMO: dict[tuple[str, int], NGramScorer] = {}
_REFERENCE_BITS: weakref.WeakKeyDictionary[NGramScorer, dict[str, float]] = weakref.WeakKeyDictionary()


def cache_root() -> Path:
    """``$MINDGYM_CACHE`` if set, else ``~/.cache/mindgym``."""
    return Path(os.environ.get("MINDGYM_CACHE", Path.home() / ".cache" / "mindgym")).expanduser()


def text_fingerprint(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def judge_domains(corpus: Corpus) -> tuple[str, ...]:
    """The English domains the judge of ``corpus`` is fitted on besides its training split: the
    ``JUDGE_DOMAINS`` for the embedded corpus, none for a corpus of your own."""
    return tuple(JUDGE_DOMAINS) if corpus.name == EMBEDDED_NAME else ()


def judge_key(corpus: Corpus, domains: tuple[str, ...] | None = None) -> str:
    """A fingerprint of everything the judge of ``corpus`` is fitted on (order aside)."""
    domains = judge_domains(corpus) if domains is None else tuple(domains)
    key = text_fingerprint(corpus.text("train"))
    return f"{key}-{english_fingerprint(domains)}" if domains else key


def judge_text(corpus: Corpus, domains: tuple[str, ...] | None = None) -> str:
    """The judge's training text: ``corpus.train`` and then the documents of the English domains."""
    domains = judge_domains(corpus) if domains is None else tuple(domains)
    parts = [corpus.text("train")] + [doc for name in domains for doc in domain_documents(name)]
    return "\n\n".join(parts)


def scorer_cache_path(
    corpus: Corpus, order: int, cache_dir: str | Path | None = None, domains: tuple[str, ...] | None = None
) -> Path:
    """Where the order-``order`` judge of ``corpus`` (its training split and English domains) is cached."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return root / "generation" / f"ngram-v{CACHE_VERSION}-o{order}-{judge_key(corpus, domains)}.pt"


def reference_scorer(
    corpus: Corpus | None = None,
    order: int = DEFAULT_ORDER,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    domains: tuple[str, ...] | None = None,
) -> NGramScorer:
    """The n-gram judge fitted on ``corpus.train`` (default: the embedded corpus) and, for the embedded
    corpus, the English ``JUDGE_DOMAINS`` (``domains`` overrides), from cache if present."""
    corpus = corpus if corpus is not None else default_corpus()
    key = (judge_key(corpus, domains), order)
    if use_cache and key in _MEMO:
        return _MEMO[key]
    path = scorer_cache_path(corpus, order, cache_dir, domains)
    scorer = None
    if use_cache and path.is_file():
        try:
            scorer = NGramScorer.from_state_dict(load_checkpoint(path, require_checksum=True))
        except (CheckpointError, KeyError, ValueError):
            scorer = None  # corrupt, without a checksum or from another version: refit, overwrite
    if scorer is None:
        scorer = NGramScorer.fit(judge_text(corpus, domains), order=order)
        if use_cache:
            save_checkpoint(scorer.state_dict(), path)
    if use_cache:
        _MEMO[key] = scorer
    return scorer


def reference_bits_per_byte(
    scorer: NGramScorer, corpus: Corpus | None = None, split: str = "validation"
) -> float:
    """Bits per byte the scorer gives the corpus's own held-out text: the yardstick of fluency."""
    corpus = corpus if corpus is not None else default_corpus()
    known = _REFERENCE_BITS.setdefault(scorer, {})
    key = text_fingerprint(corpus.text(split))
    if key not in known:
        known[key] = float(scorer.bits_per_byte(corpus.text(split)))
    return known[key]
