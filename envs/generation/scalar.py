"""The reward of one text, one byte at a time, in plain Python: the single env's fast path.

A torch op costs microseconds of dispatch however small its tensor, and the batched bookkeeping of
:class:`~envs.generation.reward.TextScore` takes dozens of them per byte: fine for a batch of thousands,
about 1,300 steps/s for a batch of one. :class:`ScalarTextScore` computes the same components for a
single text with the judge's state carried across steps:

- the judge: the packed last ``order`` bytes and, per order, the back-off weight of the context that
  ends at the previous byte (Kneser-Ney's gamma), so each byte costs one ``bisect`` per order into the
  judge's sorted tables (held as Python lists), and none above the first order whose n-gram the judge never
  saw (its longer n-grams cannot have been seen either);
- word order: the bits of the bytes that start a word (after a whitespace byte), summed and counted
  (the component adds ``PRIOR_STARTS`` pseudo starts at 8 bits, as ``calibration.shrunk_start_bits``);
- distinct-n and seq-rep-n: a set of the n-grams written so far and a count of repeats;
- the calibrated bands and threshold: Python lists indexed by length.

Numbers agree with the vector env's float32 computation to float32 rounding (tests/generation/test_envs.py
checks every info value over whole episodes).
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from math import log2
from typing import Any

from envs.generation.calibration import PRIOR_STARTS, UNIFORM_BITS, WHITESPACE, Calibration
from envs.generation.ngram import NGramScorer
from envs.generation.reward import RewardConfig

_EPS = 1e-6
_HOST_TABLES: weakref.WeakKeyDictionary[NGramScorer, tuple] = weakref.WeakKeyDictionary()


def host_tables(scorer: NGramScorer) -> tuple:
    """The scorer's tables as Python lists (memoised per scorer): unigram, byte_gamma, and per order
    n >= 2 (keys, alpha, gamma_next)."""
    if scorer not in _HOST_TABLES:
        cpu = scorer.to("cpu")
        orders = [
            (k.tolist(), a.tolist(), g.tolist())
            for k, a, g in zip(cpu.keys, cpu.alpha, cpu.gamma_next)
        ]
        _HOST_TABLES[scorer] = (cpu.unigram.tolist(), cpu.byte_gamma.tolist(), orders)
    return _HOST_TABLES[scorer]


class ScalarTextScore:
    """Running reward components of one continuation, updated one byte at a time in plain Python."""

    def __init__(self, scorer: NGramScorer, calibration: Calibration, config: RewardConfig):
        self.order = scorer.order
        self.unigram, self.byte_gamma, self.tables = host_tables(scorer)
        self.config = config
        self.weights = config.weights
        self.reference_bits = calibration.reference_bits
        self.start_reference_bits = calibration.start_reference_bits
        self._space = frozenset(WHITESPACE)
        bands = calibration.bands()
        threshold = calibration.threshold(config.weights, config.success_fraction)
        self.div_lo, self.div_hi = bands["div_lo"].tolist(), bands["div_hi"].tolist()
        self.rep_lo, self.rep_hi = bands["rep_lo"].tolist(), bands["rep_hi"].tolist()
        self.thresholds = threshold.tolist()
        self.table_max = calibration.length
        self.dn, self.rn = config.diversity_n, config.repetition_n
        self.track_batch = config.weights["batch_diversity"] > 0
        self._context_mask = (1 << (8 * self.order)) - 1
        self._gram_masks = [(1 << (8 * n)) - 1 for n in range(self.order + 1)]
        self.reset(b"", 1)

    def reset(self, context: bytes | list[int], target: int) -> None:
        """Start a continuation after ``context`` (the prompt's last bytes) with ``target`` bytes to write."""
        self.recent, self.available = 0, 0
        self.gamma = [1.0] * (self.order + 1)  # [n]: back-off weight of the n-gram ending at the last byte
        for byte in list(context)[-(self.order - 1) :]:
            self._judge(byte)
        self.target = target
        self.count = 0
        self.bits_sum = 0.0
        self.start_sum = 0.0  # bits of the word starts
        self.starts = 0
        self.last_bits = 0.0
        self.written = 0  # continuation bytes packed, newest lowest
        self.div_seen: set[int] = set()
        self.rep_seen: set[int] = set()
        self.div_repeats = self.rep_repeats = 0

    def _judge(self, byte: int) -> float:
        """Bits of ``byte`` after the bytes pushed so far, and push it."""
        recent = ((self.recent << 8) | byte) & self._context_mask
        available = min(self.available + 1, self.order)
        old = self.gamma
        new = [1.0, self.byte_gamma[byte]]
        prob = self.unigram[byte]
        seen = True
        for n in range(2, self.order + 1):
            alpha, gamma_next = 0.0, 1.0
            if seen:
                keys, alphas, gammas = self.tables[n - 2]
                key = recent & self._gram_masks[n]
                i = bisect_left(keys, key)
                if i < len(keys) and keys[i] == key:
                    alpha, gamma_next = alphas[i], gammas[i]
                else:
                    seen = False  # a longer n-gram holds this one as its suffix: unseen too
            if available >= n:
                prob = alpha + old[n - 1] * prob
            new.append(gamma_next)
        self.recent, self.available, self.gamma = recent, available, new
        return -log2(prob)

    def add(self, byte: int) -> None:
        """Append ``byte`` to the continuation."""
        space = self._space
        word_start = self.available > 0 and (self.recent & 0xFF) in space and byte not in space
        bits = self._judge(byte)
        if word_start:
            self.start_sum += bits
            self.starts += 1
        self.last_bits = bits
        self.bits_sum += bits
        self.count += 1
        self.written = (self.written << 8) | byte
        if self.count >= self.dn:
            gram = self.written & self._gram_masks[self.dn]
            if gram in self.div_seen:
                self.div_repeats += 1
            else:
                self.div_seen.add(gram)
        if self.count >= self.rn:
            gram = self.written & self._gram_masks[self.rn]
            if gram in self.rep_seen:
                self.rep_repeats += 1
            else:
                self.rep_seen.add(gram)
        self.written &= self._gram_masks[max(self.dn, self.rn)]

    def components(self) -> dict[str, Any]:
        """The components, raw metrics and score of the text so far (the vector env's info values)."""
        count = self.count
        t = min(count, self.table_max)
        bits = self.bits_sum / count if count else 0.0
        fluency = max((UNIFORM_BITS - bits) / (UNIFORM_BITS - self.reference_bits), -1.0) if count else 0.0
        div_total = count - self.dn + 1
        distinct = 1.0 - self.div_repeats / div_total if div_total > 0 else 1.0
        seq_rep = self.rep_repeats / max(count - self.rn + 1, 1)
        starts = self.starts
        start_bits = self.start_sum / starts if starts else 0.0
        shrunk = (self.start_sum + PRIOR_STARTS * UNIFORM_BITS) / (starts + PRIOR_STARTS)
        word_order = max((UNIFORM_BITS - shrunk) / (UNIFORM_BITS - self.start_reference_bits), -1.0)
        out = {
            "fluency": fluency,
            "word_order": word_order,
            "diversity": _band(distinct, self.div_lo[t], self.div_hi[t]),
            "repetition": _band(seq_rep, self.rep_lo[t], self.rep_hi[t]),
            "length": count / self.target - 1.0,
        }
        if self.track_batch:
            out["batch_diversity"] = 1.0 if count else 0.0  # a batch of one: every n-gram is its own
        w = self.weights
        score = sum(w[k] * v for k, v in out.items())
        out.update(
            {
                "bits_per_byte": bits,
                "word_start_bits": start_bits,
                f"distinct_{self.dn}": distinct,
                f"seq_rep_{self.rn}": seq_rep,
                "score": score,
            }
        )
        return out

    def threshold(self) -> float:
        return self.thresholds[min(self.count, self.table_max)]


def _band(value: float, low: float, high: float) -> float:
    below = max(low - value, 0.0) / max(low, _EPS)
    above = max(value - high, 0.0) / max(1.0 - high, _EPS)
    return -min(below + above, 1.0)


