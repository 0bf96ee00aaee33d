"""TextQualityTask: levels, prompts from the corpus, the reference scorer and the next-byte sampler.

A level sets how many bytes of prompt the agent sees and how many it must write. The default ladder makes
the continuation longer and the prompt shorter (less context, more room to loop). The supervised sampler
draws windows of ``prompt_length + continuation_length`` bytes (at most ``window``) from the training split
with next-byte targets: the same layout the env shows, so a model trained on it can act in the env.

``needle_batch`` draws supervised windows that are needle episodes in exactly the byte format of the
recall family's needle task (``envs.recall.needle``: corpus filler, the sentence "The secret number is
NNNN." at a random depth, the question, the 4-digit key), scored on the key's bytes only: the generation
runner's ``task.needle_mix`` puts them among the text batches so that a byte model learns the retrieval
``runners.evaluate on_task=needle`` measures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from envs.common.task import LevelLike, SupervisedBatch, Task
from envs.generation.calibration import Calibration, cached_calibration, calibration_path, measure
from envs.generation.corpus import SPLITS, Corpus, corpus_from_config, default_corpus, load_corpus
from envs.generation.english import CALIBRATION_DOMAINS, domain_documents, english_fingerprint
from envs.generation.ngram import NGramScorer
from envs.generation.reward import RewardConfig
from envs.generation.scorer import (
    DEFAULT_ORDER,
    EMBEDDED_NAME,
    cache_root,
    judge_key,
    reference_bits_per_byte,
    reference_scorer,
    text_fingerprint,
)
from envs.generation.tokens import NUM_BYTES, PAD_ID, VOCAB_SIZE, corpus_bytes
from envs.recall.needle import FILLERS, QUESTION, generate_needle, needle_length
from foundation.device import resolve_device

NEEDLE_KEY_DIGITS = 4  # the needle evaluation's key (runners.cross_eval scores NeedleLevel's default)
NEEDLE_MIN_HAYSTACK = 64  # the needle ladder's shortest haystack (ctx64)


@dataclass(frozen=True)
class TextLevel:
    """A difficulty: bytes of prompt shown and bytes to write."""

    name: str
    prompt_length: int
    continuation_length: int

    def __post_init__(self) -> None:
        for field_name in ("prompt_length", "continuation_length"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TextLevel.{field_name} must be a positive int, got {value!r}.")


DEFAULT_LEVELS = (
    TextLevel("p64-c16", 64, 16),
    TextLevel("p64-c32", 64, 32),
    TextLevel("p64-c64", 64, 64),
    TextLevel("p32-c128", 32, 128),
    TextLevel("p16-c256", 16, 256),
)


class TextQualityTask(Task[TextLevel]):
    """Write a continuation of a corpus prompt that an independent n-gram judge rates well.

    ``corpus``: a Corpus, or a path of a text file or folder for ``load_corpus`` (default: the embedded
    corpus). ``window``: observation length in bytes. ``train_window``: bytes per supervised training
    window (None: the level's prompt plus continuation, capped at ``window``).
    ``order``: n-gram order of the reference scorer. ``reward_weights`` and the other reward arguments
    build a :class:`RewardConfig`. ``prompt_split``: the split prompts come from (use 'validation' or
    'test' to evaluate on text the scorer and the backbone never trained on).
    """

    level_cls = TextLevel

    def __init__(
        self,
        levels: Sequence[TextLevel | Mapping] | None = None,
        level: LevelLike = 0,
        corpus: Corpus | str | Path | None = None,
        *,
        window: int = 256,
        order: int = DEFAULT_ORDER,
        reward_weights: Mapping[str, float] | None = None,
        diversity_n: int = 2,
        repetition_n: int = 4,
        success_fraction: float = 0.95,
        eos_byte: int | None = 0,
        prompt_split: str = "train",
        cache_dir: str | Path | None = None,
        train_window: int | None = None,
    ):
        super().__init__(levels, level)
        if not isinstance(window, int) or window < order:
            raise ValueError(f"window must be an int >= the n-gram order ({order}), got {window!r}.")
        if train_window is not None and (
            isinstance(train_window, bool) or not isinstance(train_window, int) or train_window < 1
        ):
            raise ValueError(
                f"train_window must be a positive int (bytes per supervised window) or None, got "
                f"{train_window!r}; e.g. task.train_window=1024."
            )
        if prompt_split not in SPLITS:
            raise ValueError(f"Unknown prompt_split {prompt_split!r}; use one of {list(SPLITS)}.")
        if isinstance(corpus, str | Path):
            corpus = load_corpus(corpus)
        elif corpus is not None and not isinstance(corpus, Corpus):
            raise TypeError(
                f"corpus must be a Corpus, a path or None, got {type(corpus).__name__}; "
                "build one with envs.generation.load_corpus(...)."
            )
        self.corpus = corpus if corpus is not None else default_corpus()
        self.window = window
        self.train_window = train_window
        self.order = order
        self.prompt_split = prompt_split
        self.cache_dir = cache_dir
        weights = dict(reward_weights) if reward_weights is not None else {}
        self.reward_config = RewardConfig(
            weights=weights,
            diversity_n=diversity_n,
            repetition_n=repetition_n,
            success_fraction=success_fraction,
            eos_byte=eos_byte,
        )
        self._bytes: dict[tuple[str, torch.device], torch.Tensor] = {}
        self._scorer: NGramScorer | None = None
        self._calibration: Calibration | None = None
        for split in ("train", prompt_split):
            longest = max(lv.prompt_length + lv.continuation_length for lv in self.ladder)
            if split == "train" and train_window is not None:
                longest = max(longest, train_window)
            if self.corpus.num_bytes(split) <= longest:
                raise ValueError(
                    f"The {split!r} split of corpus {self.corpus.name!r} has {self.corpus.num_bytes(split)} "
                    f"bytes, fewer than the longest level needs ({longest}); use a larger corpus."
                )

    @classmethod
    def from_config(cls, task: Mapping[str, Any], split: str = "train") -> TextQualityTask:
        """The task a runner's ``task`` config describes (``corpus_from_config``'s keys, ``levels``,
        ``start_level``, ``window``, ``train_window``, ``order``, ``reward_weights``), prompting from
        ``split``."""
        train_window = task.get("train_window")
        return cls(
            task["levels"],
            int(task["start_level"]),
            corpus_from_config(task),
            window=int(task["window"]),
            train_window=None if train_window is None else int(train_window),
            order=int(task["order"]),
            reward_weights=task["reward_weights"],
            prompt_split=split,
        )

    @classmethod
    def default_levels(cls) -> Sequence[TextLevel]:
        return DEFAULT_LEVELS

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    @property
    def action_token_ids(self) -> list[int]:
        return list(range(NUM_BYTES))

    @property
    def scorer(self) -> NGramScorer:
        """The reference scorer fitted on the training split (from the on-disk cache when present)."""
        if self._scorer is None:
            self._scorer = reference_scorer(self.corpus, self.order, self.cache_dir)
        return self._scorer

    @property
    def reference_bits(self) -> float:
        """The scorer's bits per byte on the corpus's validation text (what a backbone should beat)."""
        return reference_bits_per_byte(self.scorer, self.corpus, "validation")

    @property
    def calibration(self) -> Calibration:
        """The reward's yardsticks measured on held-out human text under this task's judge (cached on
        disk): the ``CALIBRATION_DOMAINS`` of envs.generation.english for the embedded corpus, the
        corpus's validation split otherwise. See :mod:`envs.generation.calibration`."""
        if self._calibration is None:
            config = self.reward_config
            if self.corpus.name == EMBEDDED_NAME:
                text_key, source = english_fingerprint(CALIBRATION_DOMAINS), ", ".join(CALIBRATION_DOMAINS)

                def text() -> str:
                    return "\n\n".join(doc for name in CALIBRATION_DOMAINS for doc in domain_documents(name))

                source = f"English domains {source} (envs.generation.english.CALIBRATION_DOMAINS)"
            else:
                text_key = text_fingerprint(self.corpus.text("validation"))
                source = f"the validation split of {self.corpus.name}"

                def text() -> str:
                    return self.corpus.text("validation")

            root = Path(self.cache_dir).expanduser() if self.cache_dir is not None else cache_root()
            path = calibration_path(
                root,
                f"{judge_key(self.corpus)}-o{self.order}",
                text_key,
                config.diversity_n,
                config.repetition_n,
            )
            self._calibration = cached_calibration(
                path,
                lambda: measure(self.scorer, text(), config.diversity_n, config.repetition_n, source),
            )
        return self._calibration

    def split_bytes(self, split: str, device: str | torch.device | None = None) -> torch.Tensor:
        """A corpus split as a uint8 tensor on ``device`` (cached per device)."""
        device = resolve_device(device or "cpu")
        if (split, device) not in self._bytes:
            self._bytes[(split, device)] = corpus_bytes(self.corpus.text(split), device)
        return self._bytes[(split, device)]

    def sequence_length(self, level: LevelLike | None = None) -> int:
        """Tokens in a supervised window at ``level``: ``train_window`` when set (the model's training
        context, whatever the level), else prompt plus continuation capped at ``window``."""
        if self.train_window is not None:
            return self.train_window
        lv = self.resolve(level)
        return min(self.window, lv.prompt_length + lv.continuation_length)

    def needle_haystack_range(self, level: LevelLike | None = None) -> tuple[int, int]:
        """(shortest, longest) haystack in bytes of a needle window at ``level``: the longest is what a
        window of :meth:`sequence_length` tokens holds with the question and the key after it."""
        length = self.sequence_length(level)
        longest = length + 1 - len(QUESTION) - NEEDLE_KEY_DIGITS
        shortest = min(NEEDLE_MIN_HAYSTACK, longest)
        if shortest < needle_length(NEEDLE_KEY_DIGITS):
            least = needle_length(NEEDLE_KEY_DIGITS) + len(QUESTION) + NEEDLE_KEY_DIGITS - 1
            raise ValueError(
                f"A supervised window of {length} bytes cannot hold a needle episode (its haystack, "
                f"{len(QUESTION)} bytes of question and a {NEEDLE_KEY_DIGITS}-digit key); set "
                f"task.train_window >= {least} or task.needle_mix=0."
            )
        return shortest, longest

    def needle_batch(
        self,
        batch_size: int,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        level: LevelLike | None = None,
    ) -> SupervisedBatch:
        """Needle episodes as supervised windows of :meth:`sequence_length` tokens: each starts at the
        window's first byte, exactly as ``runners.evaluate on_task=needle`` feeds them (corpus filler of
        ``envs.recall.needle``, a haystack drawn log-uniformly from :meth:`needle_haystack_range`, the needle
        at a uniform depth, a 4-digit key), padding after the key. The loss counts the key's bytes only:
        the trainer averages over every scored byte of a batch, and a haystack's bytes would outweigh the
        answer's a thousandfold; the text windows teach the language."""
        draw_on = generator.device if generator is not None else torch.device("cpu")
        device = resolve_device(device or draw_on)
        length = self.sequence_length(level)
        shortest, longest = self.needle_haystack_range(level)
        # log-uniform: each doubling of the haystack is equally likely, so the short haystacks a model
        # first learns to search come often and the longest still come (a sixth of them past 2,048
        # bytes in a 4,096-byte window)
        u = torch.rand(batch_size, device=draw_on, generator=generator, dtype=torch.float64)
        span = math.log(longest + 1) - math.log(shortest)
        haystack = torch.exp(math.log(shortest) + u * span).long().clamp(shortest, longest)
        params = torch.stack(
            [
                haystack.double(),
                torch.full_like(haystack, -1).double(),  # a uniform depth per episode
                torch.full_like(haystack, NEEDLE_KEY_DIGITS).double(),
                torch.full_like(haystack, FILLERS.index("corpus")).double(),
            ],
            dim=1,
        )
        episodes = generate_needle(params, length + 1, NEEDLE_KEY_DIGITS, generator).tokens.to(device)
        tokens, targets = episodes[:, :-1], episodes[:, 1:]
        j = torch.arange(length, device=device)
        first = (haystack.to(device) + len(QUESTION) - 1).unsqueeze(1)  # the input byte before the key
        answer = (j >= first) & (j < first + NEEDLE_KEY_DIGITS)
        return SupervisedBatch(tokens, torch.where(answer, targets, PAD_ID), answer)

    def sample_batch(
        self,
        batch_size: int,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        level: LevelLike | None = None,
    ) -> SupervisedBatch:
        """Random training-split windows with next-byte targets (every position counts in the loss)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        draw_on = generator.device if generator is not None else torch.device("cpu")
        device = resolve_device(device or draw_on)
        length = self.sequence_length(level)
        data = self.split_bytes("train", device)
        starts = torch.randint(0, len(data) - length, (batch_size,), device=draw_on, generator=generator)
        starts = starts.to(device)
        index = starts[:, None] + torch.arange(length + 1, device=device)
        windows = data.index_select(0, index.flatten()).view(batch_size, length + 1).long()
        tokens, targets = windows[:, :-1], windows[:, 1:]
        return SupervisedBatch(tokens, targets, torch.ones_like(targets, dtype=torch.bool))
