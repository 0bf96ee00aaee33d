"""runners.evaluate on_task=needle: a byte-level generation checkpoint scored on the needle task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from envs.recall.needle import needle_oracle
from runners import generation, recall
from runners.app import execute
from runners.cross_eval import needle_levels, needle_scores
from runners.evaluate import evaluate
from tests.runners.helpers import compose_config

LEVELS = needle_levels([96, 200], [0.0, 1.0])
ROOT = Path(__file__).resolve().parents[2]


def oracle_model(tokens: torch.Tensor) -> torch.Tensor:
    """Logits that put the right key digit first at the 4 answer positions (the needle's oracle)."""
    logits = torch.zeros(*tokens.shape, 257)
    for b in range(tokens.shape[0]):
        for t in range(tokens.shape[1] - 4, tokens.shape[1]):
            logits[b, t, needle_oracle(tokens[b, : t + 1].tolist())] = 1.0
    return logits


def test_the_oracle_finds_every_key_and_a_model_that_always_says_zero_finds_none():
    found = needle_scores(oracle_model, LEVELS, episodes=6, device=torch.device("cpu"))
    assert [r["exact"] for r in found] == [1.0] * 4 and [r["accuracy"] for r in found] == [1.0] * 4
    assert [(r["context_bytes"], r["depth"]) for r in found] == [(96, 0.0), (96, 1.0), (200, 0.0), (200, 1.0)]

    def zeros(tokens):
        logits = torch.zeros(*tokens.shape, 257)
        logits[..., ord("0")] = 1.0
        return logits

    missed = needle_scores(zeros, LEVELS, episodes=6, device=torch.device("cpu"))
    assert all(r["exact"] < 0.5 and r["accuracy"] < 0.5 for r in missed)


def _config(checkpoint, **extra):
    return OmegaConf.create(
        {
            "checkpoint": [str(checkpoint)],
            "labels": None,
            "device": "cpu",
            "seed": 0,
            "episodes": 4,
            "on_task": "needle",
            "needle_bytes": [128],
            "needle_depths": [0.5],
            **extra,
        }
    )


@pytest.fixture(scope="module")
def generation_run(tmp_path_factory) -> Path:
    """A tiny generation run folder (2 training steps)."""
    run = tmp_path_factory.mktemp("generation") / "run"
    execute(compose_config("generation", ["trainer.steps=2"]), "generation", generation.build_experiment, run)
    return run


def test_a_generation_checkpoint_is_scored_on_the_needle(generation_run, tmp_path, capsys):
    report = evaluate(_config(generation_run), out_dir=tmp_path / "eval")
    (result,) = report["runs"].values()
    rows = result["levels"]
    assert [r["level"] for r in rows] == ["128B@0.5"] and rows[0]["episodes"] == 4
    assert 0.0 <= rows[0]["accuracy"] <= 1.0 and 0.0 <= rows[0]["exact"] <= 1.0
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["task"] == "needle"
    assert "128B@0.5" in capsys.readouterr().out


def test_a_recall_checkpoint_or_an_unknown_task_is_refused_with_the_fix(tmp_path):
    run = tmp_path / "recall"
    execute(compose_config("recall", ["trainer.steps=2"]), "recall", recall.build_experiment, run)
    with pytest.raises(ValueError, match=r"byte-level generation checkpoint.*Drop on_task="):
        evaluate(_config(run), out_dir=tmp_path / "eval")
    with pytest.raises(ValueError, match="on_task='maze'"):
        evaluate(_config(run, on_task="maze"), out_dir=tmp_path / "eval")


@pytest.mark.parametrize("spelling", ["on_task=needle", "task=needle"])
def test_the_documented_command_line_scores_a_generation_checkpoint_on_the_needle(
    spelling, generation_run, tmp_path
):
    """The real ``python -m runners.evaluate`` (Hydra's parsing, the evaluate schema): ``task`` is also the
    training runners' config group, which Hydra refused as a key here; older notes' task=needle works."""
    out = tmp_path / "eval"
    command = [
        *(sys.executable, "-m", "runners.evaluate", f"checkpoint={generation_run}", spelling),
        *("needle_bytes=[96]", "needle_depths=[0.5]", "episodes=2", f"hydra.run.dir={out}"),
    ]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    (run,) = report["runs"].values()
    assert report["task"] == "needle" and [r["level"] for r in run["levels"]] == ["96B@0.5"]
    assert "96B@0.5" in result.stdout
