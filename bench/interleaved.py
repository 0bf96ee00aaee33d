"""Timings of several calls taken in interleaved rounds, and how one call's time compares with another's.

On a machine shared with other jobs, timing call A ten times and then call B ten times puts any change in
the load (another job starting, a thermal step) on one of them only. Here every round times each call once,
in an order that alternates (A B C, then C B A, ...), so a drift in load falls on all calls alike, and the
ratio of two calls is taken within each round (paired) before it is summarised: the median ratio, its
range, in how many rounds the first was faster, and a one-sided sign test of that count.

    timings = time_interleaved({"speed": run_speed, "reasoning": run_reasoning}, rounds=10, warmup=2)
    paired_ratio(timings, "speed", "reasoning")   # median 0.71, faster in 10 of 10 rounds, p 0.001
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Interleaved:
    """Seconds of every timed call per label, in round order (one sample per label per round)."""

    seconds: dict[str, list[float]]

    def median(self, label: str) -> float:
        return statistics.median(self.seconds[label])

    def quartiles(self, label: str) -> tuple[float, float]:
        """The first and third quartile of ``label``'s seconds (min and max below 4 samples)."""
        samples = sorted(self.seconds[label])
        if len(samples) < 4:
            return samples[0], samples[-1]
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        return q1, q3


@dataclass(frozen=True)
class PairedRatio:
    """``a``'s time over ``b``'s, round by round: the median, the range, the rounds where ``a`` was faster
    and the one-sided sign-test p-value of that count (the chance of as many under equal speed)."""

    median: float
    low: float
    high: float
    faster: int
    rounds: int
    p_value: float

    def measurably_faster(self, alpha: float = 0.05) -> bool:
        """``a`` faster than ``b``: median ratio below 1 and the sign test's p-value at most ``alpha``."""
        return self.median < 1.0 and self.p_value <= alpha


def round_order(labels: list[str], round_index: int) -> list[str]:
    """The labels' order in a round: as given in even rounds, reversed in odd ones (A B C, C B A, ...)."""
    return list(labels) if round_index % 2 == 0 else list(reversed(labels))


def time_interleaved(
    calls: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 1,
    sync: Callable[[], None] | None = None,
    prepare: dict[str, Callable[[], object]] | None = None,
) -> Interleaved:
    """Time every call once per round for ``rounds`` rounds after ``warmup`` untimed rounds;
    ``prepare[label]`` (untimed) runs before each of ``label``'s calls (to switch a shared model's
    setting), ``sync`` before each clock read (``torch.cuda.synchronize`` on a GPU)."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds} (raise --repeats).")
    if not calls:
        raise ValueError("time_interleaved needs at least one call to time.")
    labels = list(calls)
    prepare = prepare or {}
    seconds: dict[str, list[float]] = {label: [] for label in labels}
    for round_index in range(warmup + rounds):
        for label in round_order(labels, round_index):
            if label in prepare:
                prepare[label]()
            if sync:
                sync()
            start = time.perf_counter()
            calls[label]()
            if sync:
                sync()
            if round_index >= warmup:
                seconds[label].append(time.perf_counter() - start)
    return Interleaved(seconds)


def sign_test_p(successes: int, trials: int) -> float:
    """One-sided sign test: the chance of at least ``successes`` of ``trials`` fair coin flips."""
    return sum(math.comb(trials, k) for k in range(successes, trials + 1)) / 2**trials


def paired_ratio(timings: Interleaved, a: str, b: str) -> PairedRatio:
    """``a``'s seconds over ``b``'s, taken round by round, summarised (see ``PairedRatio``)."""
    ratios = [x / y for x, y in zip(timings.seconds[a], timings.seconds[b], strict=True)]
    faster = sum(r < 1.0 for r in ratios)
    return PairedRatio(
        median=statistics.median(ratios),
        low=min(ratios),
        high=max(ratios),
        faster=faster,
        rounds=len(ratios),
        p_value=sign_test_p(faster, len(ratios)),
    )
