"""The generation reward: a weighted sum of fluency, diversity, repetition and length, in batched torch.

Each component scores the continuation written so far (the prompt is context, never scored):

    fluency     clamp((8 - b) / (8 - b_ref), -1, 1): b = bits per byte of the continuation under the
                reference scorer (given the prompt), b_ref = the scorer's bits per byte on the corpus's own
                held-out text. 1 = as predictable as real held-out text, 0 = as uniform random bytes.
    diversity   distinct-n within the text (n = ``diversity_n``, default 2): unique n-grams / n-grams.
    batch_diversity  distinct-n across the batch (n = ``repetition_n``): the fraction of the text's n-grams
                that no other text in the batch (the vector env's other sub-envs, as they stand) contains.
                Computed only when its weight is > 0 (default 0); a single env is a batch of one.
    repetition  -seq-rep-n (n = ``repetition_n``, default 4): minus the fraction of the text's n-grams
                that already occurred earlier in it (Welleck et al. 2019). 0 = no repetition, -1 = a loop.
    length      bytes written / the level's continuation length (below 1 only if the agent stopped with
                the end-of-text byte).

The episode score is ``S = sum_k weight_k * component_k`` of the whole continuation. The sparse reward
pays S at the end of the episode; the dense reward pays ``S(prefix_t) - S(prefix_{t-1})`` for each byte,
so both give the same undiscounted return. An episode is a success when S reaches ``success_fraction`` of
the best possible score (sum of the fluency, diversity, batch_diversity and length weights).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from envs.generation.ngram import NGramScorer
from envs.generation.ngram_tracking import BatchNGramCounts, NGramRepeats
from envs.generation.tokens import NUM_BYTES

COMPONENTS = ("fluency", "diversity", "batch_diversity", "repetition", "length")
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "fluency": 1.0,
    "diversity": 0.5,
    "batch_diversity": 0.0,
    "repetition": 1.0,
    "length": 0.5,
}
UNIFORM_BITS = 8.0


@dataclass(frozen=True)
class RewardConfig:
    """Weights of the reward components and the n of the diversity and repetition measures.

    ``weights`` may name a subset of the components (the others keep their defaults). ``eos_byte`` is the
    byte that ends the episode early (None: episodes always run the full length, so length is constant).
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    diversity_n: int = 2
    repetition_n: int = 4
    success_fraction: float = 0.75
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
                f"Reward weights {weights} make the reward constant: give fluency, diversity or repetition "
                "a positive weight (length only varies when eos_byte is set)."
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

    @property
    def max_score(self) -> float:
        """The best possible episode score (repetition's best is 0)."""
        return sum(self.weights[k] for k in COMPONENTS if k != "repetition")


class TextScore:
    """Running reward components of a batch of continuations, updated one byte at a time on any device."""

    def __init__(
        self,
        scorer: NGramScorer,
        reference_bits: float,
        config: RewardConfig,
        num_rows: int,
        capacity: int,
        device: torch.device,
    ):
        self.scorer, self.config, self.device = scorer.to(device), config, device
        self.reference_bits = float(reference_bits)
        if not 0 < self.reference_bits < UNIFORM_BITS:
            raise ValueError(
                f"The scorer gives the held-out text {self.reference_bits:.2f} bits per byte, not below "
                f"{UNIFORM_BITS}; fluency is undefined. Use a larger or cleaner corpus."
            )
        self.context = scorer.order - 1
        self.history = torch.zeros(num_rows, self.context, dtype=torch.long, device=device)
        self.history_len = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.count = torch.zeros(num_rows, dtype=torch.long, device=device)
        self.bits_sum = torch.zeros(num_rows, device=device)
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
        if self.batch is not None:
            self.batch.remove(self.repetition.keys, self.repetition.recorded(self.count) & mask[:, None])
        m = mask[:, None]
        self.history = torch.where(m, prompt_tail, self.history)
        self.history_len = torch.where(mask, tail_len, self.history_len)
        self.target = torch.where(mask, target, self.target)
        for name in ("count", "recent"):
            setattr(self, name, getattr(self, name).masked_fill(mask, 0))
        self.bits_sum = self.bits_sum.masked_fill(mask, 0.0)
        self.last_bits = self.last_bits.masked_fill(mask, 0.0)
        self.diversity.reset(mask)
        self.repetition.reset(mask)

    def grow(self, capacity: int) -> None:
        """Make room for continuations of up to ``capacity`` bytes."""
        self.diversity.grow(capacity)
        self.repetition.grow(capacity)

    def add(self, byte: torch.Tensor, active: torch.Tensor) -> None:
        """Append ``byte`` (B,) to the rows where ``active``."""
        rows = torch.cat([self.history, byte[:, None]], dim=1)
        bits = self.scorer.token_bits(rows, start=self.context - self.history_len, last_only=True)
        self.last_bits = torch.where(active, bits, self.last_bits)
        self.bits_sum = self.bits_sum + torch.where(active, bits, 0.0)
        self.history = torch.where(active[:, None], rows[:, 1:], self.history)
        self.history_len = (self.history_len + active.long()).clamp(max=self.context)
        self.count = self.count + active.long()
        older = NUM_BYTES ** (max(self.config.diversity_n, self.config.repetition_n) - 1)
        self.recent = torch.where(active, (self.recent % older) * NUM_BYTES + byte, self.recent)
        self.diversity.add(self.recent, self.count, active)
        key = self.repetition.add(self.recent, self.count, active)
        if self.batch is not None:
            self.batch.add(key, active & (self.count >= self.repetition.n))

    def components(self) -> dict[str, torch.Tensor]:
        """Each component of the text written so far (all 0 for an empty text), plus raw metrics."""
        written = self.count > 0
        count = self.count.clamp(min=1).float()
        bits_per_byte = self.bits_sum / count
        fluency = ((UNIFORM_BITS - bits_per_byte) / (UNIFORM_BITS - self.reference_bits)).clamp(-1.0, 1.0)
        div_total = self.diversity.num_ngrams(self.count)
        distinct = torch.where(
            div_total > 0, 1.0 - self.diversity.repeats / div_total.clamp(min=1).float(), 1.0
        )
        rep_total = self.repetition.num_ngrams(self.count).clamp(min=1).float()
        seq_rep = self.repetition.repeats / rep_total
        zero = torch.zeros((), device=self.device)
        components = {
            "fluency": torch.where(written, fluency, zero),
            "diversity": torch.where(written, distinct, zero),
            "repetition": -seq_rep,
            "length": self.count.float() / self.target.float(),
            "bits_per_byte": torch.where(written, bits_per_byte, zero),
            f"seq_rep_{self.config.repetition_n}": seq_rep,
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
    reference_bits: float,
    prompts: torch.Tensor,
    continuations: torch.Tensor,
    config: RewardConfig | None = None,
) -> dict[str, torch.Tensor]:
    """Components and ``"score"`` of whole continuations (B, L) after prompts (B, P), both all bytes.

    The same computation the envs run byte by byte, for offline evaluation of generated text.
    """
    config = config or RewardConfig()
    batch, length = continuations.shape
    device = scorer.device
    state = TextScore(scorer, reference_bits, config, batch, length, device)
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
    return components
