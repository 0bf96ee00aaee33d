"""The throughput command's table (tests/integrations/throughput.py): a framework that is not installed or
fails gets one row saying so, and the other frameworks' rows still come; a failure makes the exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.integrations import throughput


def _missing(num_envs: int, device: str, seconds: float) -> Iterator[tuple[str, throughput.Rate]]:
    raise ModuleNotFoundError("No module named 'ray'", name="ray")
    yield  # a generator, as the real ones are


def _failing(num_envs: int, device: str, seconds: float) -> Iterator[tuple[str, throughput.Rate]]:
    yield "measured before the failure", (3.0, 1.0, 4.0)
    raise RuntimeError("can't convert cuda:0 device type tensor to numpy\nsecond line")


def _working(num_envs: int, device: str, seconds: float) -> Iterator[tuple[str, throughput.Rate]]:
    yield "after the failure", (2_000.0, 1_500.0, 2_500.0)


def test_missing_and_failing_frameworks_get_a_row_and_the_command_goes_on(monkeypatch, capsys):
    frameworks = {"rllib": _missing, "torchrl": _failing, "plain": _working}
    monkeypatch.setattr(throughput, "FRAMEWORKS", frameworks)
    monkeypatch.setattr(sys, "argv", ["throughput", "--only", "rllib", "torchrl", "plain"])
    with pytest.raises(SystemExit) as exit_info:
        throughput.main()
    assert exit_info.value.code == 1
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows == [
        "| rllib | not run: ray not installed |",
        "| measured before the failure | 3 (1-4) |",
        "| torchrl | failed: RuntimeError: can't convert cuda:0 device type tensor to numpy "
        "(traceback on stderr) |",
        "| after the failure | 2,000 (1,500-2,500) |",
    ]


def test_a_run_without_failures_exits_with_status_0(monkeypatch, capsys):
    monkeypatch.setattr(throughput, "FRAMEWORKS", {"rllib": _missing, "plain": _working})
    monkeypatch.setattr(sys, "argv", ["throughput", "--only", "rllib", "plain"])
    with pytest.raises(SystemExit) as exit_info:
        throughput.main()
    assert exit_info.value.code == 0
