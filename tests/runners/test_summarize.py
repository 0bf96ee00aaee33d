"""runners.summarize: one table and one plot across a multirun's jobs, grouped by the swept overrides with
mean and standard error over seeds, and the Hydra callback that runs it at the end of every -m run."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from runners.callbacks import SummarizeMultirun
from runners.config import register_configs
from runners.summarize import find_jobs, main, mean_se, parse_overrides, summarize
from tests.runners.helpers import CONF_DIR, TINY

ROOT = Path(__file__).resolve().parents[2]


def _job(folder: Path, overrides: list[str], finals: dict[str, float] | None, level: int = 1) -> None:
    """A job folder as a runner writes it: .hydra/overrides.yaml and report.json (None: a failed job)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
    if finals is None:
        return
    history = [
        {"step": 10, "level": 0, "exact_path": 0.0, **{f"exact_path/{k}": 0.0 for k in finals}},
        {"step": 20, "level": level, **{f"exact_path/{k}": v for k, v in finals.items()}},
    ]
    report = {
        "runner": "maze",
        "history": history,
        "exact_path_by_level": finals,
        "curriculum": {"level": level, "level_names": ["3x3", "4x4", "5x5"]},
    }
    (folder / "report.json").write_text(json.dumps(report))


@pytest.fixture
def sweep(tmp_path):
    """2 backbones x 2 seeds, plus a job that failed before writing its report."""
    values = {
        ("transformer", 0): {"3x3": 0.5, "4x4": 0.1},
        ("transformer", 1): {"3x3": 0.7, "4x4": 0.3},
        ("hebbian", 0): {"3x3": 0.9},
        ("hebbian", 1): {"3x3": 0.8, "4x4": 0.2},
    }
    for i, ((backbone, seed), finals) in enumerate(values.items()):
        _job(tmp_path / str(i), [f"backbone={backbone}", f"seed={seed}", "trainer.steps=20"], finals)
    _job(tmp_path / "4", ["backbone=titans", "seed=0", "trainer.steps=20"], None)
    return tmp_path


def test_mean_and_standard_error_over_seeds():
    mean, se = mean_se([0.5, 0.7])
    assert mean == pytest.approx(0.6) and se == pytest.approx(0.1)  # sd 0.1414 / sqrt(2)
    assert mean_se([0.4]) == (0.4, None) and mean_se([]) == (None, None)
    assert parse_overrides(["+a=1", "b=x=y", "~c"]) == {"a": "1", "b": "x=y", "~c": ""}


def test_jobs_are_grouped_by_the_swept_values_without_the_seed(sweep, capsys):
    summary = summarize(sweep)
    printed = capsys.readouterr().out
    assert summary.swept == ["backbone", "seed"] and summary.by == ["backbone"] and summary.seeds == ["seed"]
    assert summary.common == {"trainer.steps": "20"}
    transformer, hebbian = summary.groups
    assert transformer.label == "backbone=transformer" and len(transformer.jobs) == 2
    stat = transformer.stats["exact_path/3x3 final"]
    assert stat["mean"] == pytest.approx(0.6) and stat["se"] == pytest.approx(0.1) and stat["n"] == 2
    assert hebbian.stats["exact_path/4x4 final"]["n"] == 1  # one seed never measured 4x4
    assert "Skipped 4: no report.json" in printed
    row = next(line for line in printed.splitlines() if line.strip().startswith("transformer"))
    assert "0.600 ± 0.100" in row and row.split()[1] == "2"
    assert "0.200 (1/2)" in next(line for line in printed.splitlines() if line.strip().startswith("hebbian"))


def test_summary_files_hold_the_same_numbers(sweep):
    summarize(sweep, echo=False)
    with (sweep / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["backbone"] for r in rows] == ["transformer", "hebbian"]
    assert float(rows[0]["exact_path/3x3 final mean"]) == pytest.approx(0.6)
    assert float(rows[0]["exact_path/3x3 final se"]) == pytest.approx(0.1)
    assert rows[1]["exact_path/4x4 final se"] == "" and rows[1]["exact_path/4x4 final n"] == "1"
    md = (sweep / "summary.md").read_text()
    assert "| backbone | seeds | level reached |" in md and "| transformer | 2 |" in md
    assert "![summary](summary.png)" in md and (sweep / "summary.png").stat().st_size > 0


def test_natural_job_order_and_a_clear_error_for_a_folder_without_jobs(tmp_path, capsys):
    for name in ("10", "2", "1"):
        _job(tmp_path / "sweep" / name, ["seed=0"], {"3x3": 0.5})
    assert [p.name for p in find_jobs(tmp_path / "sweep")] == ["1", "2", "10"]
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path / "empty")])
    assert stop.value.code == 2 and "is not a folder" in capsys.readouterr().err


def test_every_runner_registers_the_callback():
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        for runner in ("maze", "recall", "generation"):
            cfg = compose(config_name=runner, return_hydra_config=True)
            assert cfg.hydra.callbacks.summarize._target_ == "runners.callbacks.SummarizeMultirun"
        off = compose(
            config_name="maze",
            overrides=["hydra.callbacks.summarize.enabled=false"],
            return_hydra_config=True,
        )
    callback = instantiate(off.hydra.callbacks.summarize)
    callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": "/nonexistent"}}}))  # no-op
    assert callback.enabled is False


def test_callback_summarizes_the_sweep_folder_and_never_fails_the_sweep(sweep, tmp_path, capsys):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    SummarizeMultirun().on_multirun_end(config)
    assert (sweep / "summary.csv").is_file()
    SummarizeMultirun().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "x")}}}))
    assert "python -m runners.summarize" in capsys.readouterr().out


def test_a_real_multirun_ends_with_its_summary(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runners.maze",
            "-m",
            "seed=0,1",
            "trainer.supervised.lr=0.003,0.001",
            *TINY["maze"],
            "trainer.steps=2",
            "hardware.num_threads=1",
            f"hydra.sweep.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "swept: seed, trainer.supervised.lr; averaged over: seed" in result.stdout
    with (tmp_path / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trainer.supervised.lr"] for r in rows] == ["0.003", "0.001"]
    assert all(r["seeds"] == "2" and not math.isnan(float(r["exact_path/3x3 final mean"])) for r in rows)
    assert (tmp_path / "summary.png").is_file() and (tmp_path / "summary.md").is_file()
