"""bench.interleaved: rounds alternate the order so a drifting load cancels out of paired ratios, and a
call that really is faster is found faster with a sign test that says how sure."""

import pytest

from bench import interleaved
from bench.interleaved import Interleaved, paired_ratio, sign_test_p, time_interleaved


class DriftingClock:
    """A fake perf_counter: each call costs ``cost[label] x load`` and the load grows by one per call (a
    machine getting busier), so timing one label after another would favour whichever went first."""

    def __init__(self):
        self.now, self.load = 0.0, 10.0

    def perf_counter(self) -> float:
        return self.now

    def call(self, cost: float):
        def run() -> None:
            self.now += cost * self.load
            self.load += 1.0

        return run


def timed(monkeypatch, costs: dict[str, float], rounds: int = 10) -> Interleaved:
    clock = DriftingClock()
    monkeypatch.setattr(interleaved.time, "perf_counter", clock.perf_counter)
    return time_interleaved({k: clock.call(c) for k, c in costs.items()}, rounds=rounds, warmup=1)


def test_equal_calls_under_a_growing_load_are_not_called_faster(monkeypatch):
    timings = timed(monkeypatch, {"a": 1.0, "b": 1.0})
    ratio = paired_ratio(timings, "a", "b")
    assert ratio.faster == 5 and ratio.rounds == 10  # a first in even rounds, b first in odd ones
    assert not ratio.measurably_faster()
    assert ratio.median == pytest.approx(1.0, abs=0.05)


def test_a_call_thirty_percent_cheaper_is_measurably_faster_in_every_round(monkeypatch):
    ratio = paired_ratio(timed(monkeypatch, {"reasoning": 1.0, "speed": 0.7}), "speed", "reasoning")
    assert ratio.faster == 10 and ratio.p_value == pytest.approx(1 / 1024)
    assert ratio.measurably_faster() and ratio.high < 1.0
    assert ratio.median == pytest.approx(0.7, abs=0.05)


def test_prepare_runs_before_each_call_and_the_order_alternates():
    seen: list[str] = []
    calls = {label: (lambda label=label: seen.append(label)) for label in "abc"}
    prepare = {"b": lambda: seen.append("prepare b")}
    timings = time_interleaved(calls, rounds=2, warmup=0, prepare=prepare)
    assert seen == ["a", "prepare b", "b", "c", "c", "prepare b", "b", "a"]
    assert {k: len(v) for k, v in timings.seconds.items()} == {"a": 2, "b": 2, "c": 2}


def test_sign_test_and_bad_rounds():
    assert sign_test_p(9, 10) == pytest.approx(11 / 1024)
    assert sign_test_p(0, 4) == 1.0
    with pytest.raises(ValueError, match="--repeats"):
        time_interleaved({"a": lambda: None}, rounds=0)
