"""The generation reward: fluency under the judge, minus distances from what human text does, in torch.

Each component scores the continuation written so far (the prompt is context, never scored), against the
held-out human text of :mod:`envs.generation.calibration` at the same length t:

    fluency     (8 - b) / (8 - b_ref), at least -1: b = bits per byte of the continuation under the judge
                (given the prompt), b_ref = the median bits per byte of held-out human windows. 1 = as
                predictable as typical human text, 0 = as uniform random bytes; more predictable text
                scores above 1.
    word_order  the same measure over the word starts only (a byte that is not whitespace after one that
                is): (8 - b_start) / (8 - b_start_ref), at least -1, where b_start is the mean bits of the
                text's word starts with 4 pseudo starts at 8 bits added (``shrunk_start_bits``: 0 for a
                text with no word start, credit grows with evidence). A word's first byte is where the
                judge's long context pays off only if the words follow each other as in English: shuffling
                the words of held-out English costs ~1.5 bits per word start but ~0.6 per byte overall,
                about 3x and 1.7x the spread of the same measures between domains of English, so this
                component tells English from word salad where fluency's threshold cannot
                (docs/benchmarks.md).
    diversity   band distance of distinct-n (n = ``diversity_n``, default 2): 0 while the text's distinct-n
                lies in the band (1%-99%) of human text at length t, falling to -1 towards 0 (a loop)
                below it and towards 1 (random bytes) above it.
    repetition  band distance of seq-rep-n (n = ``repetition_n``, default 4; Welleck et al. 2019): 0 inside
                the human band, -1 towards 1 (a loop) above it and towards 0 below it.
    batch_diversity  the fraction of the text's n-grams (n = ``repetition_n``) that no other text in the
                batch (the vector env's other sub-envs, as they stand) contains. Computed only when its
                weight is > 0 (default 0); a single env is a batch of one.
    length      -(1 - bytes written / the level's continuation length): 0 for a full continuation, below
                0 only if the agent stopped early with the end-of-text byte.

The episode score is ``S = sum_k weight_k * component_k`` of the whole continuation. The sparse reward
pays S at the end of the episode; the dense reward pays ``S(prefix_t) - S(prefix_{t-1})`` for each byte,
so both give the same undiscounted return. An episode is a success when S reaches the calibrated threshold
at its length: the score that ``success_fraction`` (default 95%) of held-out human windows reach.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from envs.generation.calibration import (
    UNIFORM_BITS,
    Calibration,
    band_penalty,
    fluency,
    is_word_start,
    whitespace_table,
    word_order,
)
from envs.generation.ngram import NGramScorer
from envs.generation.ngram_tracking import BatchNGramCounts, NGramRepeats
from envs.generation.tokens import NUM_BYTES

COMPONENTS = ("fluency", "word_order", "diversity", "batch_diversity", "repetition", "length")
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "fluency": 1.0,
    "word_order": 0.5,
    "diversity": 0.75,
    "batch_diversity": 0.0,
    "repetition": 0.75,
    "length": 1.0,
}


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward components and the n of the diversity and repetition measures.

    ``weights`` may name a subset of the components (the others keep their defaults). ``eos_byte`` is the
    byte that ends the episode early (None: episodes always run the full length, so length is 0).
    ``success_fraction`` is the share of held-out human text that counts as a success: the success
    threshold at each length is the score that share of human windows reaches (see calibration).
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    diversity_n: int = 2
    repetition_n: int = 4
    success_fraction: float = 0.95
    eos_byte: int | None = 0

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(COMPONENTS)
        if unknown:
            raise ValueError(
                f"Unknown reward component(s) {sorted(unknown)}; the components are {COMPONENTS}."
            )
        weights = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in self.weights.items()}}
        bad = {k: v for k, v in weights.items() if not (math.isfinite(v) and v >= 0)}
        if bad:
            raise ValueError(
                f"Reward weights must be finite and >= 0, got {bad}; a component's sign is built in "
                "(repetition is already a penalty)."
            )
        varying = [k for k, v in weights.items() if v > 0 and (k != "length" or self.eos_byte is not None)]
        if not varying:
            raise ValueError(
                f"Reward weights {weights} make the reward constant: give fluency, word_order, diversity or "
                "repetition a positive weight (length only varies when eos_byte is set)."
            )
        for name in ("diversity_n", "repetition_n"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 7:
                raise ValueError(f"{name} must be an int in [1, 7] (n-grams pack into int64), got {value!r}.")
        if not 0.0 < self.success_fraction <= 1.0:
            raise ValueError(f"success_fraction must lie in (0, 1], got {self.success_fraction!r}.")
        if self.eos_byte is not None and not 0 <= self.eos_byte < NUM_BYTES:
            raise ValueError(f"eos_byte must be a byte in [0, 255] or None, got {self.eos_byte!r}.")
        object.__setattr__(self, "weights", weights)


class TextScore:
    """Running reward components of a batch of continuations, updated one byte at a time on any device."""

    def __init__(
        self,
        scorer: NGramScorer,
        calibration: Calibration | None,
        config: RewardConfig,
        num_rows: int,
        capacity: int,
        device: torch.device,
    ):
        """``calibration`` gives the human yardsticks of the components; None tracks only the raw
        metrics (``raw()``), as calibration itself does."""
        self.scorer, self.config, self.device = scorer.to(device), config, device
        self.calibration = calibration
        if calibration is not None:
            if not isinstance(calibration, Calibration):
                raise TypeError(
                    f"TextScore needs a Calibration (task.calibration), got {type(calibration).__name__}; "
                    "a bare reference bits-per-byte no longer defines the reward's bands and threshold."
                )
            measured = (calibration.diversity_n, calibration.repetition_n)
            if measured != (config.diversity_n, config.repetition_n):
                raise ValueError(
                    f"The calibration measured distinct-{calibration.diversity_n} and seq-rep-"
                    f"{calibration.repetition_n}, the config asks for distinct-{config.diversity_n} and "
                    f"seq-rep-{config.repetition_n}; calibrate with the config's n's."
                )
            self.reference_bits = calibration.reference_bits
            self.start_reference_bits = calibration.start_reference_bits
            references = {"per byte": self.reference_bits, "per word start": self.start_reference_bits}
            for what, bits in references.items():
                if not 0 < bits < UNIFORM_BITS:
                    raise ValueError(
                        f"The judge gives held-out human text {bits:.2f} bits {what}, not below "
                        f"{UNIFORM_BITS}; fluency and word order are undefined. Use a larger, cleaner corpus."
                    )
            bands = calibration.bands()
            threshold = calibration.threshold(config.weights, config.success_fraction)
            self.tables = {k: v.to(device) for k, v in {**bands, "threshold": threshold}.items()}
            self.table_max = calibration.length
        self.context = scorer.order - 1
        # the judge's state, carried across steps: the last ``order`` bytes (packed, newest lowest), how
        # many of them are valid context, and the back-off weights of the contexts ending at the last byte
        self._judge_mod = NUM_BYTES**scorer.order
        self.judge_recent = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.history_len = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.gammas = torch.ones(num_rows, scorer.order, device=device)
        self.count = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.bits_sum = torch.zeros(num_rows, device=device)
        self.start_sum = torch.zeros(num_rows, device=device)  # bits of the word starts
        self.starts = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.whitespace = whitespace_table(device)
        self.recent = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.diversity = NGramRepeats(config.diversity_n, num_rows, capacity, device)
        self.track_batch = config.weights["batch_diversity"] > 0
        self.repetition = NGramRepeats(config.repetition_n, num_rows, capacity, device, self.track_batch)
        self.batch = BatchNGramCounts(device) if self.track_batch else None
        self.target = torch.ones(num_rows, dtype=torch.long, device=device)
        self.last_bits = torch.zeros(num_rows, device=device)

    def reset(
        self, mask: torch.Tensor, prompt_tail: torch.Tensor, tail_len: torch.Tensor, target: torch.Tensor
    ):
        """Start rows in ``mask`` with the last ``tail_len`` bytes of their prompt (right-aligned in
        ``prompt_tail`` (B, order-1)) as context and ``target`` bytes to write."""
        if self.device.type == "cpu" and not bool(mask.any()):
            return  # nothing to reset (a free check on the CPU; on a GPU it would sync, so it runs through)
        if self.batch is not None:
            self.batch.remove(self.repetition.keys, self.repetition.recorded(self.count) & mask[:, None])
        packed = torch.zeros_like(self.judge_recent)
        for j in range(prompt_tail.shape[1]):
            packed = packed * NUM_BYTES + prompt_tail[:, j]
        self.judge_recent = torch.where(mask, packed, self.judge_recent)
        self.history_len = torch.where(mask, tail_len, self.history_len)
        gammas = self.scorer.context_gammas(packed, tail_len)
        self.gammas = torch.where(mask[:, None], gammas, self.gammas)
        self.target = torch.where(mask, target, self.target)
        for name in ("count", "recent", "starts"):
            setattr(self, name, getattr(self, name).masked_fill(mask, 0))
        self.bits_sum = self.bits_sum.masked_fill(mask, 0.0)
        self.start_sum = self.start_sum.masked_fill(mask, 0.0)
        self.last_bits = self.last_bits.masked_fill(mask, 0.0)
        self.diversity.reset(mask)
        self.repetition.reset(mask)

    def grow(self, capacity: int) -> None:
        """Make room for continuations of up to ``capacity`` bytes."""
        self.diversity.grow(capacity)
        self.repetition.grow(capacity)

    def add(self, byte: torch.Tensor, active: torch.Tensor) -> None:
        """Append ``byte`` (B,) to the rows where ``active``."""
        recent = (self.judge_recent * NUM_BYTES + byte) % self._judge_mod
        bits, gammas = self.scorer.step_bits(recent, self.history_len + 1, self.gammas)
        previous = torch.where(self.history_len > 0, self.judge_recent % NUM_BYTES, NUM_BYTES)
        word_start = active & is_word_start(previous, byte, self.whitespace)
        self.start_sum = self.start_sum + torch.where(word_start, bits, 0.0)
        self.starts = self.starts + word_start.long()
        self.judge_recent = torch.where(active, recent, self.judge_recent)
        self.gammas = torch.where(active[:, None], gammas, self.gammas)
        self.last_bits = torch.where(active, bits, self.last_bits)
        self.bits_sum = self.bits_sum + torch.where(active, bits, 0.0)
        self.history_len = (self.history_len + active.long()).clamp(max=self.context)
        self.count = self.count + active.long()
        older = NUM_BYTES ** (max(self.config.diversity_n, self.config.repetition_n) - 1)
        self.recent = torch.where(active, (self.recent % older) * NUM_BYTES + byte, self.recent)
        self.diversity.add(self.recent, self.count, active)
        key = self.repetition.add(self.recent, self.count, active)
        if self.batch is not None:
            self.batch.add(key, active & (self.count >= self.repetition.n))

    def raw(self) -> dict[str, torch.Tensor]:
        """The raw metrics of the text written so far (B,) each: bits per byte, bits per word start (0
        without one), number of word starts, distinct-n, seq-rep-n."""
        bits_per_byte = self.bits_sum / self.count.clamp(min=1).float()
        start_bits = self.start_sum / self.starts.clamp(min=1).float()
        div_total = self.diversity.num_ngrams(self.count)
        distinct = torch.where(
            div_total > 0, 1.0 - self.diversity.repeats / div_total.clamp(min=1).float(), 1.0
        )
        rep_total = self.repetition.num_ngrams(self.count).clamp(min=1).float()
        seq_rep = self.repetition.repeats / rep_total
        return {
            "bits": bits_per_byte, "start_bits": start_bits, "starts": self.starts, "distinct": distinct,
            "seq_rep": seq_rep,
        }

    def threshold(self) -> torch.Tensor:
        """(B,) the success threshold at each row's current length."""
        return self.tables["threshold"][self.count.clamp(max=self.table_max)]

    def components(self) -> dict[str, torch.Tensor]:
        """Each component of the text written so far (all 0 for an empty text), plus raw metrics."""
        if self.calibration is None:
            raise ValueError("This TextScore tracks raw metrics only; give it a Calibration for components.")
        written = self.count > 0
        raw = self.raw()
        t = self.count.clamp(max=self.table_max)
        tables = self.tables
        zero = torch.zeros((), device=self.device)
        components = {
            "fluency": torch.where(written, fluency(raw["bits"], self.reference_bits), zero),
            "word_order": word_order(raw["start_bits"], raw["starts"], self.start_reference_bits),
            "diversity": band_penalty(raw["distinct"], tables["div_lo"][t], tables["div_hi"][t]),
            "repetition": band_penalty(raw["seq_rep"], tables["rep_lo"][t], tables["rep_hi"][t]),
            "length": self.count.float() / self.target.float() - 1.0,
            "bits_per_byte": torch.where(written, raw["bits"], zero),
            "word_start_bits": raw["start_bits"],
            f"distinct_{self.config.diversity_n}": raw["distinct"],
            f"seq_rep_{self.config.repetition_n}": raw["seq_rep"],
        }
        if self.batch is not None:
            unique = self.batch.unique_fraction(self.repetition, self.count)
            components["batch_diversity"] = torch.where(written, unique, zero)
        return components

    def score(self, components: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum S of the components (batch_diversity counts only when it is tracked)."""
        names = [k for k in COMPONENTS if k in components]
        return sum(self.config.weights[k] * components[k] for k in names)


def score_continuations(
    scorer: NGramScorer,
    calibration: Calibration,
    prompts: torch.Tensor,
    continuations: torch.Tensor,
    config: RewardConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Components, ``"score"`` and ``"success"`` of whole continuations (B, L) after prompts (B, P).

    The same computation the envs run byte by byte, for offline evaluation of generated text.
    ``calibration`` is the task's (``task.calibration``); ``config`` must use its n's.
    """
    config = config or RewardConfig()
    batch, length = continuations.shape
    device = scorer.device
    state = TextScore(scorer, calibration, config, batch, length, device)
    tail = prompts[:, -state.context :].to(device, torch.long)
    pad = state.context - tail.shape[1]
    tail = torch.nn.functional.pad(tail, (pad, 0))
    everyone = torch.ones(batch, dtype=torch.bool, device=device)
    target = torch.full((batch,), length, dtype=torch.long, device=device)
    state.reset(everyone, tail, torch.full((batch,), state.context - pad, device=device), target)
    for t in range(length):
        state.add(continuations[:, t].to(device, torch.long), everyone)
    components = state.components()
    components["score"] = state.score(components)
    components["success"] = components["score"] >= state.threshold()
    return components


def reward_means(final: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Means over finished episodes' final infos: ``reward`` (the episode's ``score``), ``success`` and
    each reward component present as ``reward_<component>``."""
    means = {"reward": final["score"].float().mean(), "success": final["success"].float().mean()}
    means.update({f"reward_{c}": final[c].float().mean() for c in COMPONENTS if c in final})
    return means
