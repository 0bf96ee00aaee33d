"""The command lines users type: a run's Hydra folder, a multirun sweep, a bad key, and evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from runners import maze
from runners.app import execute
from runners.config import CONF_PATH
from runners.ddp import DistInfo
from runners.evaluate import EXPERIMENTS, evaluate
from tests.runners.helpers import TINY, compose_config

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_multirun_sweep_writes_one_complete_folder_per_job(tmp_path):
    result = cli(
        "-m",
        "runners.maze",
        "-m",
        "backbone=transformer,hebbian",
        *TINY["maze"],
        "trainer.steps=2",
        "backbone.memory_chunk=8",
        "hardware.num_threads=1",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for job in ("0", "1"):
        folder = tmp_path / job
        assert (folder / ".hydra" / "config.yaml").is_file()
        assert (folder / "report.json").is_file() and (folder / "checkpoints" / "latest.pt").is_file()
        assert any((folder / "tb").iterdir())
        assert (folder / "maze.log").is_file()  # Hydra's job is named after the runner, not runners.app
    memory = OmegaConf.load(tmp_path / "1" / ".hydra" / "config.yaml").backbone.memory
    assert memory == "hebbian"


@pytest.mark.parametrize("runner", ["maze", "recall", "generation"])
def test_each_runners_hydra_job_is_named_after_the_runner(runner):
    """runners.app.hydra_main defines Hydra's task function; the job (and its <name>.log) is the runner's."""
    with initialize_config_dir(config_dir=str(CONF_PATH), version_base="1.3"):
        cfg = compose(config_name=runner, return_hydra_config=True)
    assert cfg.hydra.job.name == runner


def test_unknown_key_on_the_command_line_fails_before_any_work(tmp_path):
    result = cli("-m", "runners.recall", "trainer.stepz=5", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "Key 'stepz' not in 'TrainerConfig'" in result.stderr
    assert not (tmp_path / "tb").exists()


def test_evaluate_puts_two_runs_side_by_side(tmp_path):
    for name, seed in (("a", 0), ("b", 1)):
        cfg = compose_config("maze", ["trainer.steps=2", f"seed={seed}"])
        execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path / name)
    eval_cfg = OmegaConf.create(
        {
            "checkpoint": [str(tmp_path / "a"), str(tmp_path / "b" / "checkpoints" / "latest.pt")],
            "labels": ["a", "b"],
            "device": "cpu",
            "seed": 0,
            "episodes": 4,
        }
    )
    report = evaluate(eval_cfg, tmp_path / "eval")

    on_disk = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert set(on_disk["runs"]) == {"a", "b"} and on_disk["runners"] == {"a": "maze", "b": "maze"}
    run_a = report["runs"]["a"]
    assert set(run_a["exact_path"]) >= {"3x3", "4x4", "3x3-prim", "4x4-prim"}
    assert run_a["generator"]["3x3-prim"] == "prim" and run_a["step"] == 2
    assert all(0.0 <= v <= 1.0 for v in run_a["exact_path"].values())
    assert {Path(p).name for p in on_disk["plots"]} == {"maze_exact_path_dfs.png", "maze_exact_path_prim.png"}
    assert all((tmp_path / "eval" / p).is_file() for p in on_disk["plots"])


@pytest.mark.parametrize(
    ("runner", "keys"),
    [
        ("recall", {"accuracy", "exact_match", "grid"}),
        ("generation", {"bits_per_char", "reward", "components"}),
    ],
)
def test_full_evaluation_and_comparison_plots_of_each_family(runner, keys, tmp_path):
    experiment = EXPERIMENTS[runner](compose_config(runner), DistInfo())
    results = experiment.full_evaluation(episodes=4)
    assert keys <= set(results)
    first_level = experiment.task.ladder[0].name
    scores = results["exact_match"] if runner == "recall" else results["reward"]
    assert first_level in scores
    paths = type(experiment).comparison_plots({"a": results, "b": results}, tmp_path)
    assert paths and all(path.is_file() for path in paths)
