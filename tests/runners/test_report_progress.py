"""Progress that never looks frozen: evaluation ticks in the bar, and log lines are never glued onto it."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from types import SimpleNamespace

from runners import recall
from runners.app import execute
from runners.logging import eval_postfix, level_label, ticking_status
from tests.runners.helpers import compose_config


class _Bar:
    def __init__(self, disable: bool = False):
        self.disable = disable
        self.texts: list[str] = []
        self.lock = threading.Lock()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        with self.lock:
            self.texts.append(text)


def test_status_ticks_while_the_block_runs_and_stops_after_it():
    bar = _Bar()
    with ticking_status(bar, "evaluating at step 5:", every_s=0.02):
        time.sleep(0.2)
    count = len(bar.texts)
    assert count >= 3 and all(t.startswith("evaluating at step 5: ") and t.endswith("s") for t in bar.texts)
    time.sleep(0.1)
    assert len(bar.texts) == count  # the ticker stopped with the block
    quiet = _Bar(disable=True)
    with ticking_status(quiet, "x", every_s=0.01):
        time.sleep(0.05)
    assert quiet.texts == []


def test_bar_names_the_headline_metric_and_the_level():
    experiment = SimpleNamespace(
        headline="exact_path", level=1, curriculum=SimpleNamespace(level_names=["3x3", "4x4"])
    )
    assert eval_postfix({"level": 0, "score": 0.84375}, experiment) == "exact_path 0.844 @3x3"
    assert level_label(experiment) == "1 4x4"
    assert level_label(SimpleNamespace(level=2)) == "2"


def test_curriculum_log_lines_go_above_the_bar_not_onto_it(tmp_path, capsys):
    cfg = compose_config(
        "recall",
        [
            "trainer.steps=4",
            "trainer.progress_bar=true",
            "curriculum.params.threshold=0.0",  # every evaluation moves the curriculum: a log line
            "curriculum.params.min_episodes=1",
        ],
    )
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)  # as Hydra's console handler, on the captured stream
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        execute(cfg, "recall", recall.build_experiment, run_dir=tmp_path)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    err = capsys.readouterr().err
    lines = re.split(r"[\r\n]", err)
    moves = [line for line in lines if "curriculum level 0" in line]
    assert moves and all(line.startswith("curriculum level 0") for line in moves), moves
    assert any("eval exact_match" in line for line in lines)
