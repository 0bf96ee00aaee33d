"""Runner configs are refused before anything runs, with the override to type, the value and the rule.

Issue 22's runner-config items: zero cadences crashed with ZeroDivisionError, negative steps, threads and
gradient clips and an empty level list were accepted, ``+trainer.stepz=100`` was stored and ignored, a
preset on the wrong runner failed with a raw Hydra key error, and resume without the original overrides
trained a finished run on to the default length. Composing a config is fast; nothing here trains more
than two steps.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from runners import app, maze
from runners.app import check_command_line, command_line_overrides, execute
from runners.checkpoints import load_resume_state
from runners.config import (
    CONF_PATH,
    RULES,
    TRAINING_RUNNERS,
    check_overrides,
    flatten,
    option_keys,
    preset_runner,
    resume_config,
    validate,
)
from tests.runners.helpers import TINY, compose_config

ROOT = Path(__file__).resolve().parents[2]


def refusal(runner: str, overrides: list[str], tiny: bool = False) -> str:
    cfg = compose_config(runner, overrides, tiny=tiny)
    with pytest.raises(ValueError) as error:
        validate(cfg, runner)
    return str(error.value)


@pytest.mark.parametrize(
    ("runner", "override", "rule"),
    [
        ("maze", "trainer.checkpoint_every=0", "must be a positive int"),
        ("maze", "trainer.eval_every=0", "must be a positive int (optimiser steps between evaluations)"),
        ("maze", "trainer.steps=-5", "must be a positive int"),
        ("maze", "hardware.num_threads=-1", "must be a non-negative int"),
        ("maze", "trainer.supervised.grad_clip=-1.0", "must be a positive number"),
        ("generation", "engine.rl.grad_clip=-1.0", "must be a positive number"),
        ("maze", "trainer.log_every=0", "must be a positive int"),
        ("maze", "task.eval_episodes=0", "must be a positive int"),
        ("recall", "task.eval_batch=0", "must be a positive int"),
        ("generation", "task.eval_envs=0", "must be a positive int"),
        ("maze", "trainer.max_minutes=0", "must be null or a positive number"),
        ("maze", "engine.top_p=1.5", "must be a number in (0, 1)"),
        ("recall", "engine.rl.gamma=1.5", "must be a number in [0, 1]"),
    ],
)
def test_a_number_out_of_range_is_refused_naming_the_override_the_value_and_the_rule(runner, override, rule):
    key, value = override.split("=")
    message = refusal(runner, [override])
    assert message.startswith(f"{key} {rule}"), message
    assert f"got {value}" in message and f"; e.g. {key}=" in message


def test_every_numeric_setting_of_trainer_hardware_task_and_engine_has_a_rule():
    shared = [p for p in RULES["maze"] if p.split(".")[0] in ("trainer", "hardware", "engine")]
    for runner in TRAINING_RUNNERS:
        assert set(shared) <= set(RULES[runner])
        leaves = flatten(OmegaConf.to_container(compose_config(runner, tiny=False)))
        numeric = [
            path
            for path, value in leaves.items()
            if path.split(".")[0] in ("trainer", "hardware", "task", "engine")
            and (type(value) in (int, float) or path.endswith(("_steps", "_size", "max_minutes")))
            and "._weights." not in path
        ]
        assert not set(numeric) - set(RULES[runner]), (runner, set(numeric) - set(RULES[runner]))


def test_an_empty_level_list_is_refused_not_replaced_by_the_default_ladder():
    message = refusal("maze", ["task.levels=[]"])
    assert "task.levels must be null (the task's default ladder) or a non-empty list" in message
    assert "got []" in message


def test_the_zero_divisions_and_the_misnamed_messages_are_refused_before_anything_runs(tmp_path):
    for override in ("trainer.checkpoint_every=0", "trainer.eval_every=0", "trainer.log_every=0"):
        cfg = compose_config("maze", [override])
        with pytest.raises(ValueError, match=override.split("=")[0].replace(".", r"\.")):
            execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_all_problems_are_listed_at_once():
    message = refusal("maze", ["trainer.steps=0", "engine.rl.lr=-1"])
    assert message.startswith("2 problems in the config:")
    assert "trainer.steps must be" in message and "engine.rl.lr must be" in message


def test_the_dataclasses_own_rules_run_before_anything_runs():
    assert "backbone: BackboneConfig: d_model=33" in refusal("maze", ["backbone.d_model=33"])
    message = refusal("maze", ["engine.interleave.supervised_steps=0", "engine.interleave.rl_steps=0"])
    assert "engine.interleave: InterleaveSchedule needs supervised_steps > 0 or rl_steps > 0" in message
    assert "temperature (0.01) must exceed min_temperature" in refusal("maze", ["engine.temperature=0.01"])


def test_task_level_indices_and_reward_weights_are_checked():
    assert "task.start_level must index task.levels (4 levels" in refusal("maze", ["task.start_level=4"])
    assert "task.eval_levels must be null" in refusal("recall", ["task.eval_levels=[0,9]"])
    message = refusal("generation", ["+task.reward_weights.fluency=-1"])
    assert "task.reward_weights must map reward components" in message


@pytest.mark.parametrize("runner", TRAINING_RUNNERS)
def test_default_configs_and_every_preset_pass(runner):
    validate(compose_config(runner, tiny=False), runner)
    validate(compose_config(runner), runner)
    for path in sorted((CONF_PATH / "preset").glob("*.yaml")):
        if preset_runner(path.stem) == runner:
            validate(compose_config(runner, [f"preset={path.stem}"], tiny=False), runner)
            check_overrides(runner, [f"preset={path.stem}"])


def test_a_key_added_with_plus_is_refused_by_name_with_the_closest_key():
    cfg = compose_config("maze", ["+trainer.stepz=100"])  # Hydra adds it past the schema
    assert cfg.trainer.stepz == 100
    message = refusal("maze", ["+trainer.stepz=100"])
    assert message.startswith(
        "trainer.stepz: Key 'stepz' not in 'TrainerConfig': did you mean trainer.steps?"
    )
    for line in (["+trainer.stepz=100"], ["trainer.stepz=100"]):
        with pytest.raises(ValueError, match=r"did you mean trainer\.steps") as error:
            check_overrides("maze", line)
        assert "+trainer" not in str(error.value).split(":", 1)[1]  # no advice to append the key


@pytest.mark.parametrize(
    ("override", "closest"),
    [
        ("+steps=1", "trainer.steps"),  # a key of a group given at the top level
        ("task.eval_episode=3", "task.eval_episodes"),
        ("engine.rl.lrr=1", "engine.rl.lr"),
        ("+hardware.threads=2", "hardware.num_threads"),
    ],
)
def test_misspelt_keys_name_the_closest_known_key(override, closest):
    with pytest.raises(ValueError, match=f"did you mean {closest}\\?"):
        check_overrides("maze", [override])


def test_free_form_settings_and_hydra_keys_pass_the_command_line_check():
    check_overrides(
        "generation",
        [
            "+curriculum.params.patience=3",
            "+task.reward_weights.repetition=2",
            "+trainer.supervised.optimizer_kwargs.momentum=0.9",
            "hydra.run.dir=somewhere",
            "backbone=hebbian",
            "trainer.steps=3",
        ],
    )


@pytest.mark.parametrize(
    ("runner", "override", "command"),
    [
        ("maze", "preset=agiformer", "python -m runners.generation preset=agiformer"),
        ("recall", "preset=poh_maze", "python -m runners.maze preset=poh_maze"),
        ("recall", "task=maze", "python -m runners.maze task=maze"),
        ("maze", "task=copy", "python -m runners.recall task=copy"),
        ("generation", "task=needle", "python -m runners.recall task=needle"),
        ("maze", "preset=poh_maze,echo", "python -m runners.generation preset=echo"),  # a sweep
        ("maze", "preset=cognate_speed", "python -m runners.generation preset=cognate_speed"),  # a variant
    ],
)
def test_a_preset_or_task_of_another_runner_names_the_runner_to_use(runner, override, command):
    with pytest.raises(ValueError, match=f"not runners.{runner}; run `{command}`"):
        check_overrides(runner, [override])


def test_every_task_option_passes_on_its_own_runner():
    own = {
        "maze": "maze",
        "copy": "recall",
        "associative": "recall",
        "needle": "recall",
        "text": "generation",
    }
    for task, runner in own.items():
        check_overrides(runner, [f"task={task}"])


def test_the_command_line_is_read_as_hydra_reads_it():
    line = ["-m", "backbone=a,b", "--cfg", "job", "hydra.run.dir=x", "+trainer.stepz=1", "--config-dir", "d"]
    assert command_line_overrides(line) == ["backbone=a,b", "hydra.run.dir=x", "+trainer.stepz=1"]
    with pytest.raises(SystemExit, match=r"Error in the command line of runners\.maze"):
        check_command_line("maze", line)
    check_command_line("maze", ["--help"])  # Hydra's own flags are Hydra's


def test_the_runner_refuses_its_command_line_before_hydra_runs(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runners.recall",
            "preset=poh_maze",
            "+trainer.stepz=1",
            f"hydra.run.dir={tmp_path}/r",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "run `python -m runners.maze preset=poh_maze`" in result.stderr
    assert "did you mean trainer.steps?" in result.stderr and "To append" not in result.stderr
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------ resume
ORIGINAL = ["trainer.steps=2", "trainer.supervised.lr=0.01", "seed=3"]


@pytest.fixture
def finished_run(tmp_path):
    """A tiny maze run of 2 steps with non-default settings (the test's original command line)."""
    cfg = compose_config("maze", ORIGINAL)
    execute(cfg, "maze", maze.build_experiment, run_dir=tmp_path, overrides=[*TINY["maze"], *ORIGINAL])
    return tmp_path


def record_after_resume(*line: str) -> list[str]:
    """The original command line (tiny settings, then ORIGINAL), each key once with the resume's value,
    and ``resume=true`` last."""
    latest = {o.split("=")[0]: o for o in [*TINY["maze"], *ORIGINAL, *line]}
    return [*dict.fromkeys(latest[o.split("=")[0]] for o in [*TINY["maze"], *ORIGINAL]), "resume=true"]


def resume(run_dir, line: list[str], **kwargs):
    """``python -m runners.maze resume=true <line>`` in the run's folder: no tiny settings given."""
    cfg = compose_config("maze", ["resume=true", *line], tiny=False)
    return execute(cfg, "maze", maze.build_experiment, run_dir=run_dir, **kwargs)


def test_resuming_a_finished_run_without_its_overrides_says_it_is_finished(finished_run):
    before = (finished_run / "checkpoints" / "latest.pt").read_bytes()
    with pytest.raises(
        ValueError, match=r"already finished: it has done all its trainer\.steps=2 steps"
    ) as err:
        resume(finished_run, [])
    assert "resume=true trainer.steps=4" in str(err.value)
    assert (finished_run / "checkpoints" / "latest.pt").read_bytes() == before


def test_a_resume_rebuilds_the_run_from_the_checkpoints_config_and_may_extend_it(finished_run):
    line = ["trainer.steps=4", "trainer.eval_every=1"]
    report = resume(finished_run, line, overrides=["resume=true", *line])
    assert report["steps_done"] == 4 and [h["step"] for h in report["history"]] == [2, 3, 4]
    latest = load_checkpoint(finished_run / "checkpoints" / "latest.pt")
    saved = latest["config"]
    assert (saved["seed"], saved["trainer"]["supervised"]["lr"], saved["backbone"]["d_model"]) == (
        3,
        0.01,
        32,
    )
    assert saved["task"]["levels"][0]["name"] == "3x3" and saved["trainer"]["steps"] == 4
    assert saved["resume"] is True
    schedule = latest["experiment"]["agent"]["supervised"]["scheduler"]["lr_lambdas"][0]
    assert schedule["total_steps"] == 2  # the learning-rate schedule keeps its saved length
    assert latest["overrides"] == record_after_resume(*line)


def test_a_resume_refuses_other_changes_naming_the_key_the_saved_and_the_new_value(finished_run):
    before = (finished_run / "checkpoints" / "latest.pt").read_bytes()
    with pytest.raises(ValueError) as err:
        resume(finished_run, ["trainer.steps=4", "trainer.supervised.lr=0.5", "backbone=hebbian"])
    message = str(err.value)
    assert "trainer.supervised.lr: saved 0.01, now 0.5" in message
    assert "backbone.memory: saved None, now 'hebbian'" in message
    assert "On resume only trainer.steps, trainer.max_minutes" in message
    assert (finished_run / "checkpoints" / "latest.pt").read_bytes() == before
    with pytest.raises(ValueError, match=r"is at step 2, past trainer\.steps=1; a run cannot be shortened"):
        resume(finished_run, ["trainer.steps=1"])


def test_repeating_the_original_overrides_on_resume_is_allowed(finished_run):
    with pytest.raises(ValueError, match="already finished"):  # same config: nothing refused, nothing to do
        execute(
            compose_config("maze", [*ORIGINAL, "resume=true"]), "maze", maze.build_experiment, finished_run
        )


def test_a_setting_named_on_the_command_line_counts_even_at_its_default_value():
    saved = OmegaConf.to_container(
        compose_config("maze", ["trainer.supervised.lr=0.01"], tiny=False), resolve=True
    )
    current = compose_config(
        "maze", ["resume=true", "trainer.supervised.lr=0.003"], tiny=False
    )  # the default
    default = compose_config("maze", tiny=False)
    assert resume_config(saved, current, default, "maze").trainer.supervised.lr == 0.01  # unnamed: kept
    with pytest.raises(ValueError, match=r"trainer\.supervised\.lr: saved 0\.01, now 0\.003"):
        resume_config(saved, current, default, "maze", option_keys(["trainer.supervised.lr=0.003"]))
    with pytest.raises(ValueError, match=r"backbone\.memory: saved 'hebbian', now None"):
        saved["backbone"]["memory"] = "hebbian"
        resume_config(saved, current, default, "maze", option_keys(["backbone=transformer"]))


def test_safe_settings_change_on_resume_and_interpolated_ones_follow_the_saved_run():
    saved_cfg = compose_config("generation", ["preset=agiformer"], tiny=False)
    saved = OmegaConf.to_container(saved_cfg, resolve=True)
    line = [
        "preset=agiformer",
        "resume=true",
        "trainer.steps=40000",
        "hardware.device=cuda",
        "trainer.max_minutes=5",
    ]
    current = compose_config("generation", line, tiny=False)
    resumed = resume_config(saved, current, compose_config("generation", tiny=False), "generation")
    assert resumed.trainer.steps == 40000 and resumed.hardware.device == "cuda"
    assert resumed.trainer.max_minutes == 5 and resumed.resume is True
    assert resumed.curriculum.params.total == 20000  # the staged curriculum keeps the saved run's stages
    with pytest.raises(ValueError, match=r"trainer.supervised.batch_size: saved 4, now 256"):
        resume_config(
            saved,
            compose_config("generation", ["hardware=gpu"], tiny=False),
            compose_config("generation", tiny=False),
            "generation",
        )


def test_a_resume_keeps_the_record_of_the_runs_overrides(finished_run, monkeypatch):
    hydra_dir = finished_run / ".hydra"
    hydra_dir.mkdir()
    (hydra_dir / "overrides.yaml").write_text("- resume=true\n")  # what Hydra writes for the resume command
    (hydra_dir / "config.yaml").write_text("trainer: {steps: 1500}\n")
    monkeypatch.setattr(app.HydraConfig, "initialized", staticmethod(lambda: True))
    hydra_cfg = OmegaConf.create(
        {
            "output_subdir": ".hydra",
            "runtime": {"output_dir": str(finished_run)},
            "overrides": {"task": ["resume=true", "trainer.steps=3"]},
        }
    )
    monkeypatch.setattr(app.HydraConfig, "get", staticmethod(lambda: hydra_cfg))
    resume(finished_run, ["trainer.steps=3"])
    assert OmegaConf.load(hydra_dir / "overrides.yaml") == record_after_resume("trainer.steps=3")
    written = OmegaConf.load(hydra_dir / "config.yaml")
    assert written.trainer.steps == 3 and written.seed == 3 and written.backbone.d_model == 32


def test_a_checkpoint_that_is_not_a_runs_is_refused_by_name(tmp_path):
    save_checkpoint({"step": 1, "weights": torch.zeros(1)}, tmp_path / "agent.pt")
    with pytest.raises(CheckpointError, match=r"is not a runner's checkpoint \(it has no runner, config"):
        load_resume_state(str(tmp_path / "agent.pt"), tmp_path)
