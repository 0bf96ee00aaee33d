"""Calibration of the generation reward on held-out human text: fluency's yardstick, bands, success threshold.

    python -m envs.generation.calibration          # prints the default task's calibration (docs quote it)

The reward (``envs.generation.reward``) measures a continuation against what human text does at the same
length. This module measures that: it cuts held-out human text into windows (``CAL_PROMPT`` bytes of
prompt, then up to ``CAL_LENGTH`` bytes of continuation) and records, as the envs' byte-by-byte
bookkeeping would, for every window and every prefix length t = 1..T the continuation's bits per byte
under the judge, the mean bits of its word starts (``is_word_start``: a byte that is not whitespace after
one that is), its distinct-n (n = ``diversity_n``) and its seq-rep-n (n = ``repetition_n``). From that
profile, for each t:

- ``reference_bits``: the median bits per byte of the human windows at ``REFERENCE_LENGTH`` bytes
  (fluency 1 = as predictable as the median held-out human window);
- ``start_reference_bits``: the median evidence-weighted bits per word start (``shrunk_start_bits``) at
  the same length (word order 1 = each word's first byte as predictable from the words before it as in
  the median human window);
- the diversity and repetition **bands**: the ``BAND_QUANTILES`` (1%-99%) of human distinct-n and
  seq-rep-n at length t; the reward's components are 0 inside the band and fall to -1 towards either
  extreme (0 or 1), so text too repetitive and text too random both lose;
- the **success threshold**: the ``1 - success_fraction`` quantile of the human windows' own scores at
  length t under the configured weights, so a ``success_fraction`` (default 95%) of held-out human text
  succeeds. Beyond the longest calibrated length the last value holds.

Which text is "held-out human text": for the default (embedded) corpus, the ``CALIBRATION_DOMAINS`` of
:mod:`envs.generation.english` (docstrings of installed packages the judge is not fitted on and the
judge-quality benchmark does not evaluate on); for any other corpus, its own validation split. The
profile is cached on disk beside the judge (``$MINDGYM_CACHE/generation/calibration-*.pt``), keyed by the
judge, the text and the n's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from envs.generation.ngram import NGramScorer
from envs.generation.tokens import NUM_BYTES
from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

CALIBRATION_VERSION = 2
CAL_PROMPT = 64
CAL_LENGTH = 512
MAX_WINDOWS = 1024
MIN_LENGTH = 16
REFERENCE_LENGTH = 256
BAND_QUANTILES = (0.01, 0.99)  # wide: the bands catch degenerate text, not human variation
UNIFORM_BITS = 8.0
PRIOR_STARTS = 4  # word order counts this many pseudo word starts at UNIFORM_BITS: evidence before credit
WHITESPACE = (9, 10, 11, 12, 13, 32)  # the bytes Python's bytes.isspace() accepts
_EPS = 1e-6
_MEMO: dict[Path, Calibration] = {}


@dataclass
class Calibration:
    """Per-window, per-length profile of held-out human text under one judge, and the tables it yields.

    ``bits``, ``start_bits``, ``distinct`` and ``seq_rep`` are (windows, T) float32 and ``starts`` (windows,
    T) int32: column t-1 holds the value of each window's first t continuation bytes (``start_bits``: mean
    bits of its word starts, 0 while it has none; ``starts``: how many word starts). ``source`` names the
    text.
    """

    bits: torch.Tensor
    start_bits: torch.Tensor
    starts: torch.Tensor
    distinct: torch.Tensor
    seq_rep: torch.Tensor
    diversity_n: int
    repetition_n: int
    source: str = "held-out text"
    _tables: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def length(self) -> int:
        return self.bits.shape[1]

    @property
    def num_windows(self) -> int:
        return self.bits.shape[0]

    @property
    def reference_bits(self) -> float:
        """Median bits per byte of the human windows at ``REFERENCE_LENGTH`` bytes (or the longest)."""
        return float(self.bits[:, min(REFERENCE_LENGTH, self.length) - 1].median())

    @property
    def start_reference_bits(self) -> float:
        """Median ``shrunk_start_bits`` of the human windows at ``REFERENCE_LENGTH`` bytes."""
        column = min(REFERENCE_LENGTH, self.length) - 1
        if not bool((self.starts[:, column] > 0).any()):
            raise ValueError(
                f"The calibration text ({self.source}) has no word starts (a byte after whitespace) in its "
                "windows: the word-order component is undefined. Calibrate on prose."
            )
        shrunk = shrunk_start_bits(self.start_bits[:, column], self.starts[:, column])
        return float(shrunk.median())

    def bands(self) -> dict[str, torch.Tensor]:
        """(T + 1,) tables indexed by length: ``div_lo``, ``div_hi``, ``rep_lo``, ``rep_hi``."""
        if "bands" not in self._tables:
            q = torch.tensor(BAND_QUANTILES)
            div = torch.quantile(self.distinct, q, dim=0)  # (2, T)
            rep = torch.quantile(self.seq_rep, q, dim=0)
            pad = torch.tensor([[1.0], [1.0]]), torch.tensor([[0.0], [0.0]])  # t = 0: an empty text
            div, rep = torch.cat([pad[0], div], dim=1), torch.cat([pad[1], rep], dim=1)
            self._tables["bands"] = {"div_lo": div[0], "div_hi": div[1], "rep_lo": rep[0], "rep_hi": rep[1]}
        return self._tables["bands"]

    def human_components(self) -> dict[str, torch.Tensor]:
        """The reward's components of every human window at every length: (windows, T) each."""
        bands = self.bands()
        return {
            "fluency": fluency(self.bits, self.reference_bits),
            "word_order": word_order(self.start_bits, self.starts, self.start_reference_bits),
            "diversity": band_penalty(self.distinct, bands["div_lo"][1:], bands["div_hi"][1:]),
            "repetition": band_penalty(self.seq_rep, bands["rep_lo"][1:], bands["rep_hi"][1:]),
        }

    def threshold(self, weights: Mapping[str, float], success_fraction: float) -> torch.Tensor:
        """(T + 1,) success thresholds by length: the ``1 - success_fraction`` quantile of the human
        windows' scores under ``weights`` (batch diversity counted at its best, 1; length penalty 0)."""
        key = ("threshold", tuple(sorted(weights.items())), success_fraction)
        if key not in self._tables:
            parts = self.human_components()
            score = sum(weights[k] * parts[k] for k in parts) + weights.get("batch_diversity", 0.0)
            table = torch.quantile(score, 1.0 - success_fraction, dim=0)
            self._tables[key] = torch.cat([table[:1], table])  # t = 0 never ends an episode that scores
        return self._tables[key]

    def state_dict(self) -> dict:
        return {
            "version": CALIBRATION_VERSION,
            "bits": self.bits,
            "start_bits": self.start_bits,
            "starts": self.starts,
            "distinct": self.distinct,
            "seq_rep": self.seq_rep,
            "diversity_n": self.diversity_n,
            "repetition_n": self.repetition_n,
            "source": self.source,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> Calibration:
        if state.get("version") != CALIBRATION_VERSION:
            raise ValueError(f"Calibration version {state.get('version')!r}, expected {CALIBRATION_VERSION}.")
        return cls(
            state["bits"], state["start_bits"], state["starts"], state["distinct"], state["seq_rep"],
            int(state["diversity_n"]), int(state["repetition_n"]), str(state["source"]),
        )


def fluency(bits_per_byte: torch.Tensor, reference_bits: float) -> torch.Tensor:
    """``(8 - b) / (8 - b_ref)``, at least -1: 1 = the median held-out human text, 0 = uniform random bytes,
    above 1 = more predictable than it (at most ``8 / (8 - b_ref)``, for text the judge predicts exactly)."""
    return ((UNIFORM_BITS - bits_per_byte) / (UNIFORM_BITS - reference_bits)).clamp(min=-1.0)


def shrunk_start_bits(start_bits: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Mean bits per word start with ``PRIOR_STARTS`` pseudo word starts at ``UNIFORM_BITS`` added:
    ``(n * b_start + K * 8) / (n + K)``. A text earns word order from evidence: with no word start it has
    none (8 bits, as uniform random bytes), with a few the estimate is pulled towards that, and from a few
    dozen (a few hundred bytes of English) it is the plain mean. This keeps short texts, whose two or three
    word starts say little, from passing on luck, and gives no credit for writing without spaces."""
    n = starts.float()
    return (start_bits * n + PRIOR_STARTS * UNIFORM_BITS) / (n + PRIOR_STARTS)


def word_order(start_bits: torch.Tensor, starts: torch.Tensor, start_reference_bits: float) -> torch.Tensor:
    """Fluency of the word starts: ``(8 - b) / (8 - b_ref)`` of their ``shrunk_start_bits``, at least -1:
    0 for a text with no word start, 1 for the median held-out human window."""
    return fluency(shrunk_start_bits(start_bits, starts), start_reference_bits)


def whitespace_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """(257,) bool: which ids are whitespace bytes (id 256, pad or "no byte", is not)."""
    table = torch.zeros(NUM_BYTES + 1, dtype=torch.bool)
    table[list(WHITESPACE)] = True
    return table.to(device)


def is_word_start(
    previous: torch.Tensor, byte: torch.Tensor, whitespace: torch.Tensor | None = None
) -> torch.Tensor:
    """Whether ``byte`` starts a word: it is not whitespace and ``previous`` (256: no byte) is, elementwise.
    ``whitespace`` is ``whitespace_table`` on the bytes' device (built if not given)."""
    space = whitespace if whitespace is not None else whitespace_table(byte.device)
    return space[previous.clamp(0, NUM_BYTES)] & ~space[byte.clamp(0, NUM_BYTES)]


def band_penalty(value: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """0 inside [low, high]; below it ``-(low - v) / low``, above it ``-(v - high) / (1 - high)``: -1 at
    the extreme of either side (values lie in [0, 1])."""
    below = (low - value).clamp(min=0) / low.clamp(min=_EPS)
    above = (value - high).clamp(min=0) / (1 - high).clamp(min=_EPS)
    return -(below + above).clamp(max=1.0)


def human_windows(text: str, prompt: int = CAL_PROMPT, length: int = CAL_LENGTH) -> torch.Tensor:
    """Non-overlapping (prompt + length)-byte windows of ``text`` (at most ``MAX_WINDOWS``, evenly
    spaced), with ``length`` cut down for a short text (to no less than ``MIN_LENGTH``): (N, P + L)."""
    data = text.encode("utf-8")
    length = min(length, len(data) - prompt)
    if length < MIN_LENGTH:
        raise ValueError(
            f"The calibration text has {len(data)} bytes, too few to calibrate the reward on windows of "
            f"{prompt} + {MIN_LENGTH} bytes; use a corpus with a larger validation split."
        )
    span = prompt + length
    count = len(data) // span
    picks = torch.linspace(0, count - 1, min(count, MAX_WINDOWS)).round().long().unique()
    flat = torch.frombuffer(bytearray(data[: count * span]), dtype=torch.uint8).view(count, span)
    return flat[picks].long()


def repeat_flags(texts: torch.Tensor, n: int) -> torch.Tensor:
    """(N, L - n + 1) bool: whether the n-gram starting at each column repeats an earlier one of its row."""
    keys = texts[:, : texts.shape[1] - n + 1].clone()
    for j in range(1, n):
        keys = keys * NUM_BYTES + texts[:, j : texts.shape[1] - n + 1 + j]
    order = torch.sort(keys, dim=1, stable=True).indices  # equal keys keep their column order
    ranked = keys.gather(1, order)
    repeated = torch.zeros_like(ranked, dtype=torch.bool)
    repeated[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
    return torch.zeros_like(repeated).scatter_(1, order, repeated)


def prefix_share(flags: torch.Tensor, length: int, n: int, empty: float) -> torch.Tensor:
    """(N, length): at each prefix length t, the share of its n-grams flagged (``empty`` for t < n)."""
    counts = torch.zeros(flags.shape[0], length)
    grams = torch.arange(1, length + 1) - n + 1
    counts[:, n - 1 :] = flags.float().cumsum(dim=1)
    return torch.where(grams > 0, counts / grams.clamp(min=1), torch.tensor(empty))


@torch.no_grad()
def measure(
    scorer: NGramScorer, text: str, diversity_n: int = 2, repetition_n: int = 4, source: str = "text"
) -> Calibration:
    """The human profile of ``text``: each window's bits per byte, bits and number of word starts,
    distinct-n and seq-rep-n at every prefix length, computed for all prefixes at once exactly as the envs'
    byte-by-byte bookkeeping (``TextScore.raw``) computes them (``tests/generation/test_calibration.py``
    checks the two agree)."""
    windows = human_windows(text)
    texts = windows[:, CAL_PROMPT:]
    length = texts.shape[1]
    start = CAL_PROMPT - (scorer.order - 1)  # the judge sees as much prompt as the envs give it
    bits = scorer.token_bits(windows.to(scorer.device), start=start)[:, CAL_PROMPT:].float().cpu()
    positions = torch.arange(1, length + 1)
    word_starts = is_word_start(windows[:, CAL_PROMPT - 1 : -1], texts)
    starts = word_starts.int().cumsum(dim=1)
    start_sum = torch.where(word_starts, bits, 0.0).cumsum(dim=1)
    return Calibration(
        bits=bits.cumsum(dim=1) / positions,
        start_bits=torch.where(starts > 0, start_sum / starts.clamp(min=1), 0.0),
        starts=starts.int(),
        distinct=1.0 - prefix_share(repeat_flags(texts, diversity_n), length, diversity_n, 0.0),
        seq_rep=prefix_share(repeat_flags(texts, repetition_n), length, repetition_n, 0.0),
        diversity_n=diversity_n,
        repetition_n=repetition_n,
        source=source,
    )


def calibration_path(
    cache_dir: Path, judge_key: str, text_key: str, diversity_n: int, repetition_n: int
) -> Path:
    """Where the calibration of one judge on one text with these n's is cached."""
    parts = (CALIBRATION_VERSION, judge_key, text_key, diversity_n, repetition_n, CAL_PROMPT, CAL_LENGTH)
    key = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=12).hexdigest()
    return cache_dir / "generation" / f"calibration-v{CALIBRATION_VERSION}-{key}.pt"


def cached_calibration(path: Path, build: Callable[[], Calibration], use_cache: bool = True) -> Calibration:
    """The calibration at ``path`` if it loads and verifies, else ``build()`` (saved to ``path``);
    memoised per process."""
    if use_cache and path in _MEMO:
        return _MEMO[path]
    calibration = None
    if use_cache and path.is_file():
        try:
            calibration = Calibration.from_state_dict(load_checkpoint(path, require_checksum=True))
        except (CheckpointError, KeyError, ValueError):
            calibration = None  # corrupt or from another version: measure again, overwrite
    if calibration is None:
        calibration = build()
        if use_cache:
            save_checkpoint(calibration.state_dict(), path)
    if use_cache:
        _MEMO[path] = calibration
    return calibration


def describe(calibration: Calibration, weights: Mapping[str, float], success_fraction: float) -> str:
    """A Markdown table of the calibration at the default levels' lengths (what docs/generation.md quotes)."""
    bands, threshold = calibration.bands(), calibration.threshold(weights, success_fraction)
    human = calibration.human_components()
    lines = [
        f"calibration text: {calibration.source} ({calibration.num_windows} windows of up to "
        f"{calibration.length} bytes after a {CAL_PROMPT}-byte prompt)",
        f"reference bits per byte (median human window at {min(REFERENCE_LENGTH, calibration.length)} "
        f"bytes): {calibration.reference_bits:.3f}; per word start: {calibration.start_reference_bits:.3f}",
        "",
        f"| length | distinct-{calibration.diversity_n} band | seq-rep-{calibration.repetition_n} band | "
        "human fluency (median) | human word order (median) | success threshold |",
        "|---|---|---|---|---|---|",
    ]
    for t in (16, 32, 64, 128, 256, 512):
        if t > calibration.length:
            break
        lines.append(
            f"| {t} | {bands['div_lo'][t]:.3f}-{bands['div_hi'][t]:.3f} | "
            f"{bands['rep_lo'][t]:.3f}-{bands['rep_hi'][t]:.3f} | "
            f"{float(human['fluency'][:, t - 1].median()):.3f} | "
            f"{float(human['word_order'][:, t - 1].median()):.3f} | {float(threshold[t]):.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    from envs.generation.task import TextQualityTask

    task = TextQualityTask()
    config = task.reward_config
    print(f"weights: {dict(config.weights)}; success_fraction {config.success_fraction}")
    print(describe(task.calibration, config.weights, config.success_fraction))


if __name__ == "__main__":
    main()
