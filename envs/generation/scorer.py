"""The reference scorer of a corpus, fitted once and cached on disk under ``$MINDGYM_CACHE``.

The cache file is keyed by a hash of the training text and the n-gram order, written atomically with
``save_checkpoint`` and read with ``load_checkpoint`` (``weights_only=True``), so a foreign or corrupt file
runs no code; a corrupt one is refitted and replaced. Within a process, scorers are also memoised.
"""

from __future__ import annotations

import hashlib
import os
import weakref
from pathlib import Path

from envs.generation.corpus import Corpus, default_corpus
from envs.generation.ngram import NGramScorer
from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

DEFAULT_ORDER = 6
CACHE_VERSION = 2
_MEMO: dict[tuple[str, int], NGramScorer] = {}
_REFERENCE_BITS: weakref.WeakKeyDictionary[NGramScorer, dict[str, float]] = weakref.WeakKeyDictionary()


def cache_root() -> Path:
    """``$MINDGYM_CACHE`` if set, else ``~/.cache/mindgym``."""
    return Path(os.environ.get("MINDGYM_CACHE", Path.home() / ".cache" / "mindgym")).expanduser()


def text_fingerprint(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


def scorer_cache_path(corpus: Corpus, order: int, cache_dir: str | Path | None = None) -> Path:
    """Where the order-``order`` scorer of ``corpus``'s training split is cached."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return (
        root / "generation" / f"ngram-v{CACHE_VERSION}-o{order}-{text_fingerprint(corpus.text('train'))}.pt"
    )


def reference_scorer(
    corpus: Corpus | None = None,
    order: int = DEFAULT_ORDER,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> NGramScorer:
    """The n-gram scorer fitted on ``corpus.train`` (default: the embedded corpus), from cache if present."""
    corpus = corpus if corpus is not None else default_corpus()
    key = (text_fingerprint(corpus.text("train")), order)
    if use_cache and key in _MEMO:
        return _MEMO[key]
    path = scorer_cache_path(corpus, order, cache_dir)
    scorer = None
    if use_cache and path.is_file():
        try:
            scorer = NGramScorer.from_state_dict(load_checkpoint(path, require_checksum=True))
        except (CheckpointError, KeyError, ValueError):
            scorer = None  # corrupt, without a checksum or from another version: refit, overwrite
    if scorer is None:
        scorer = NGramScorer.fit(corpus.text("train"), order=order)
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
