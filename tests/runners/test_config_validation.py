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
from omegaconf import OmegaConf

from runners import maze
from runners.app import check_command_line, command_line_overrides, execute
from runners.config import CONF_PATH, RULES, TRAINING_RUNNERS, check_overrides, preset_runner, validate
from tests.runners.helpers import compose_config

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


def test_every_shared_numeric_setting_is_checked_for_every_runner():
    shared = [p for p in RULES["maze"] if p.split(".")[0] in ("trainer", "hardware", "engine")]
    for runner in TRAINING_RUNNERS:
        assert set(shared) <= set(RULES[runner])
        for field in (
            "trainer",
            "hardware",
            "task",
            "engine",
            "engine.rl",
            "engine.interleave",
            "trainer.supervised",
        ):
            node = OmegaConf.select(compose_config(runner, tiny=False), field)
            numeric = [
                k for k, v in node.items() if type(v) in (int, float) or k.endswith(("_steps", "_size"))
            ]
            assert all(f"{field}.{k}" in RULES[runner] for k in numeric), (field, numeric)


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
