"""Property-based fuzz of the public entry points: bad input fails cleanly, and nothing breaks after it.

Over every registered ``mindgym/`` id, single and vector env, and over the loaders (maze layouts, corpora,
level specs, checkpoints), hypothesis feeds inputs that break a rule and checks that

- the call raises ValueError or TypeError (CheckpointError is a ValueError) with a non-empty message;
- the object stays as it was and usable: its ladder and levels are unchanged, and reset() and a valid
  step() work afterwards;
- where a loader accepts an input, what it returns is what the input says (no dropped or invented maze
  cells, no replacement characters, no changed checkpoint payload).

The default run is fast (``FUZZ_EXAMPLES`` examples a property, derandomised so it is reproducible);
``pytest -m slow tests/test_fuzz.py`` reruns it with ten times as many. ``MINDGYM_FUZZ_REPORT=<file>``
writes how many inputs each entry point was fed (docs/reliability.md quotes the count).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

import envs
from envs.common.task import LevelLadder, levels_from_spec
from envs.generation.corpus import load_corpus
from envs.generation.task import TextQualityTask
from envs.maze import MazeTask, layout_level, parse_layout
from envs.maze import tokens as maze_tokens
from envs.recall.copy_task import CopyLevel, RepeatCopyLevel
from envs.recall.families import FAMILIES
from foundation.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from runners.config import (
    RESUME_SAFE,
    RULES,
    TRAINING_RUNNERS,
    Rule,
    check_overrides,
    flatten,
    resume_config,
    schema_of,
    validate,
)
from tests.runners.helpers import compose_config

FUZZ_EXAMPLES = 40 if os.environ.get("MINDGYM_FUZZ") != "slow" else 400
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
IDS = sorted(env_id for env_id in gym.registry if env_id.startswith("mindgym/"))
NUM_ENVS = 3
TRIED: Counter[str] = Counter()  # inputs fed to each entry point
REFUSED: Counter[str] = Counter()  # of those, the ones it refused
ACCEPTED: Counter[str] = Counter()  # valid inputs the layout and corpus fuzz drew, checked to be read exactly
GOOD_MAZE = "#####\n#S  #\n# #G#\n#####"
LEVEL_NAMES = frozenset(
    level.name
    for ladder in (
        MazeTask.default_levels(),
        TextQualityTask.default_levels(),
        *(family.default_levels() for family in FAMILIES.values()),
    )
    for level in ladder
)
assert sorted(envs.ENV_IDS) == IDS


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    """Write the number of inputs tried per entry point where MINDGYM_FUZZ_REPORT asks for it."""
    yield
    target = os.environ.get("MINDGYM_FUZZ_REPORT")
    if target:
        report = {
            "tried": sum(TRIED.values()),
            "refused": sum(REFUSED.values()),
            "accepted_and_exact": sum(ACCEPTED.values()),
            "by_entry": {entry: [TRIED[entry], REFUSED[entry], ACCEPTED[entry]] for entry in sorted(TRIED)},
        }
        Path(target).write_text(json.dumps(report, indent=2))


def refused(entry: str, call: Any, *args: Any, **kwargs: Any) -> BaseException:
    """Call ``call``; it must raise ValueError or TypeError with a message. Counts the input."""
    TRIED[entry] += 1
    with pytest.raises((ValueError, TypeError)) as info:
        call(*args, **kwargs)
    assert str(info.value).strip(), f"{entry}: {type(info.value).__name__} without a message"
    REFUSED[entry] += 1
    return info.value


# ------------------------------------------------------------------------------------------ envs
@functools.cache
def single_env(env_id: str) -> gym.Env:
    env = gym.make(env_id)
    env.reset(seed=0)
    return env


@functools.cache
def vector_env(env_id: str) -> gym.vector.VectorEnv:
    extra = {"pool_size": 4} if env_id == "mindgym/Maze-v0" else {}
    env = gym.make_vec(env_id, NUM_ENVS, vectorization_mode="vector_entry_point", device="cpu", **extra)
    env.reset(seed=0)
    return env


def still_usable(env: gym.Env | gym.vector.VectorEnv) -> None:
    """A normal reset and a valid step work."""
    env.reset()
    env.step(env.action_space.sample())


def level_state(env: Any) -> tuple:
    base = env.unwrapped
    task = base.task
    levels = tuple(base.next_level_ids.tolist()) if hasattr(base, "next_level_ids") else task.level_index
    return len(task.ladder), levels


bad_seeds = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=2**64),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=4),
    st.lists(st.integers(0, 9), max_size=2),
    st.just(np.float32(3.0)),
)
bad_options = st.one_of(
    st.dictionaries(st.text(max_size=6).filter(lambda k: k != "reset_mask"), st.integers(), min_size=1),
    st.integers(),
    st.text(),
    st.lists(st.integers(), min_size=0, max_size=2),
)
# Level fields whose every value breaks the rules of every level class (a required field is missing,
# unknown, or holds a value out of range or of the wrong type), so no draw is a valid custom level.
bad_field_values = st.one_of(
    st.integers(max_value=0), st.integers(min_value=10**7), st.text(max_size=3), st.none(), st.floats()
)
level_fields = st.sampled_from(
    [
        *("name", "height", "width", "length", "vocab", "repeats", "pairs", "queries", "context_bytes"),
        *("prompt_length", "continuation_length", "generator", "colour"),
    ]
)
bad_levels = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=50),
    st.text(max_size=8).filter(lambda name: name not in LEVEL_NAMES),
    st.booleans(),
    st.floats(),
    st.none(),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(level_fields, bad_field_values, max_size=4),
    st.dictionaries(level_fields, bad_field_values, max_size=3).map(lambda d: {**d, "name": "fuzz"}),
)


def bad_single_actions(n: int) -> st.SearchStrategy:
    return st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=n),
        st.floats(),
        st.booleans(),
        st.text(max_size=3),
        st.none(),
        st.lists(st.integers(0, n - 1), max_size=2),
        st.just(np.array([0, 1])),
        st.just(np.float64(0.0)),
    )


@pytest.mark.parametrize("env_id", IDS)
@FUZZ
@given(data=st.data())
def test_single_env_step_refuses_bad_actions(env_id, data):
    env = single_env(env_id)
    action = data.draw(bad_single_actions(int(env.action_space.n)))
    refused(f"{env_id} step", env.step, action)
    still_usable(env)


@pytest.mark.parametrize("env_id", IDS)
@FUZZ
@given(seed=bad_seeds, options=bad_options)
def test_single_env_reset_refuses_bad_seeds_and_options(env_id, seed, options):
    env = single_env(env_id)
    error = refused(f"{env_id} reset(seed)", env.reset, seed=seed)
    assert "seed" in str(error)
    refused(f"{env_id} reset(options)", env.reset, options=options)
    still_usable(env)


@pytest.mark.parametrize("env_id", IDS)
@FUZZ
@given(level=bad_levels)
def test_single_env_set_level_refuses_bad_levels_and_changes_nothing(env_id, level):
    env = single_env(env_id)
    before = level_state(env)
    refused(f"{env_id} set_level", env.unwrapped.set_level, level)
    assert level_state(env) == before
    still_usable(env)


def bad_vector_actions(n: int) -> st.SearchStrategy:
    return st.one_of(
        st.lists(st.integers(0, n - 1), max_size=NUM_ENVS + 2).filter(lambda a: len(a) != NUM_ENVS),
        st.lists(st.integers(min_value=n, max_value=2**62), min_size=NUM_ENVS, max_size=NUM_ENVS),
        st.lists(st.integers(min_value=-(2**62), max_value=-1), min_size=NUM_ENVS, max_size=NUM_ENVS),
        st.lists(st.floats(allow_nan=False), min_size=NUM_ENVS, max_size=NUM_ENVS).map(np.array),
        st.lists(st.booleans(), min_size=NUM_ENVS, max_size=NUM_ENVS).map(torch.tensor),
        st.text(max_size=3),
        st.none(),
        st.just(torch.zeros(NUM_ENVS, 2, dtype=torch.long)),
        st.just([[0], [1, 2]]),
    )


@pytest.mark.parametrize("env_id", IDS)
@FUZZ
@given(data=st.data())
def test_vector_env_step_refuses_bad_actions(env_id, data):
    env = vector_env(env_id)
    actions = data.draw(bad_vector_actions(int(env.single_action_space.n)))
    refused(f"{env_id} vector step", env.step, actions)
    still_usable(env)


bad_masks = st.one_of(
    st.lists(st.booleans(), max_size=NUM_ENVS + 2).filter(lambda m: len(m) != NUM_ENVS),
    st.lists(st.integers(0, 1), min_size=NUM_ENVS, max_size=NUM_ENVS),
    st.text(max_size=3),
    st.just([[True], [False, True]]),
)


@pytest.mark.parametrize("env_id", IDS)
@FUZZ
@given(seed=bad_seeds, options=bad_options, mask=bad_masks)
def test_vector_env_reset_refuses_bad_seeds_options_and_masks(env_id, seed, options, mask):
    env = vector_env(env_id)
    before = env.unwrapped.generator.get_state()
    error = refused(f"{env_id} vector reset(seed)", env.reset, seed=seed)
    assert "seed" in str(error)
    refused(f"{env_id} vector reset(options)", env.reset, options=options)
    refused(f"{env_id} vector reset(reset_mask)", env.reset, seed=1, options={"reset_mask": mask})
    assert torch.equal(env.unwrapped.generator.get_state(), before)  # nothing was reseeded
    still_usable(env)


bad_env_ids = st.one_of(
    st.integers(min_value=NUM_ENVS),
    st.integers(max_value=-1),
    st.lists(st.integers(0, NUM_ENVS - 1), max_size=3).map(lambda ids: [*ids, NUM_ENVS + 5]),
    st.floats(),
    st.booleans(),
    st.text(min_size=1, max_size=3),
    st.just([[0, 1], [1, 0]]),
    st.just(np.array([True, False, True])),
    st.just({"env": 0}),
)


def bad_level_tensors(num_levels: int) -> st.SearchStrategy:
    return st.one_of(
        st.lists(st.floats(0, 3), min_size=NUM_ENVS, max_size=NUM_ENVS).map(torch.tensor),
        st.lists(st.integers(0, num_levels - 1), max_size=NUM_ENVS + 3)
        .filter(lambda v: len(v) not in (NUM_ENVS,))
        .map(lambda v: torch.tensor(v, dtype=torch.long)),
        st.lists(st.integers(num_levels, 10**6), min_size=NUM_ENVS, max_size=NUM_ENVS).map(torch.tensor),
        st.lists(st.integers(-(10**6), -1), min_size=NUM_ENVS, max_size=NUM_ENVS).map(torch.tensor),
        st.just(torch.ones(NUM_ENVS, dtype=torch.bool)),
    )


@pytest.mark.parametrize("env_id", IDS)
@FUZZ
@given(data=st.data())
def test_vector_env_set_level_refuses_bad_input_and_changes_nothing(env_id, data):
    env = vector_env(env_id)
    base = env.unwrapped
    before = level_state(env)
    refused(f"{env_id} vector set_level(level)", base.set_level, data.draw(bad_levels))
    refused(f"{env_id} vector set_level(env_ids)", base.set_level, 0, data.draw(bad_env_ids))
    tensor = data.draw(bad_level_tensors(base.task.num_levels))
    refused(f"{env_id} vector set_level(tensor)", base.set_level, tensor)
    assert level_state(env) == before
    still_usable(env)


# ------------------------------------------------------------------------------------------ layouts
layout_text = st.text(alphabet="#  SG.o_x\n\r\t", max_size=60)
layout_arrays = st.integers(0, 6).flatmap(
    lambda h: st.integers(0, 6).flatmap(
        lambda w: st.lists(st.integers(-1, 5), min_size=h * w, max_size=h * w).map(
            lambda v: np.array(v, dtype=np.int64).reshape(h, w)
        )
    )
)
layout_rows = st.lists(st.text(alphabet="# SG", max_size=6), max_size=5)


@st.composite
def open_layouts(draw: Any) -> Any:
    """Mostly open grids (often solvable) with edge rows and columns of open cells, as text, rows or array."""
    height, width = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    cells = st.lists(st.sampled_from([0, 0, 0, 1]), min_size=height * width, max_size=height * width)
    codes = np.array(draw(cells))
    start, goal = draw(st.lists(st.integers(0, height * width - 1), min_size=2, max_size=2, unique=True))
    codes[start], codes[goal] = 2, 3
    grid = codes.reshape(height, width)
    rows = ["".join(" #SG"[v] for v in row) for row in grid.tolist()]
    return draw(st.sampled_from([grid, rows, "\n".join(rows), "\n" + "\n".join(rows) + "\n"]))


def expected_shape(text: str) -> tuple[int, int]:
    rows = text.replace("\r\n", "\n").split("\n")
    while rows and rows[0] == "":
        rows = rows[1:]
    while rows and rows[-1] == "":
        rows = rows[:-1]
    return len(rows), len(rows[0])


@FUZZ
@given(layout=st.one_of(layout_text, layout_arrays, layout_rows, open_layouts()))
def test_layouts_are_refused_or_read_cell_for_cell(layout):
    TRIED["parse_layout"] += 1
    try:
        maze = parse_layout(layout)
    except (ValueError, TypeError) as error:
        assert str(error).strip()
        REFUSED["parse_layout"] += 1
        parse_layout(GOOD_MAZE)
        return
    # accepted: exactly the cells given, and tokens inside the vocabulary
    if isinstance(layout, str):
        assert (maze.height, maze.width) == expected_shape(layout)
    elif isinstance(layout, np.ndarray):
        assert (maze.height, maze.width) == layout.shape
    else:
        assert (maze.height, maze.width) == (len(layout), len(layout[0]))
    assert int(maze_tokens.supervised_batch(maze).tokens.max()) < maze_tokens.VOCAB_SIZE
    ACCEPTED["parse_layout"] += 1


@FUZZ
@given(
    height=st.integers(129, 300),
    width=st.integers(2, 300),
    kind=st.sampled_from(["text", "array", "rows", "batch", "level"]),
)
def test_oversized_layouts_are_refused(height, width, kind):
    grid = np.zeros((height, width), dtype=np.int64)
    grid[0, 0], grid[0, 1] = 2, 3
    if kind == "array":
        layout: Any = grid
    else:
        rows = ["".join(" #SG"[v] for v in row) for row in grid.tolist()]
        layout = "\n".join(rows) if kind == "text" else rows
    if kind == "batch":
        refused("batch_from_layouts", MazeTask().batch_from_layouts, [GOOD_MAZE, layout])
    elif kind == "level":
        refused("layout_level", layout_level, layout.T if isinstance(layout, np.ndarray) else layout)
    else:
        refused("parse_layout", parse_layout, layout)


# ------------------------------------------------------------------------------------------ corpora
# documents with accented letters, separated by blank lines: valid utf-8, and read as latin-1 they decode
# (to other characters) too, so both encodings are exercised on text they accept
prose = st.lists(st.text(alphabet="abcé ïø\n", min_size=1, max_size=20), min_size=3, max_size=6).map(
    "\n\n".join
)


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=300), prose.map(lambda text: text.encode("utf-8"))),
    encoding=st.sampled_from(["utf-8", "latin-1", "no-such-codec"]),
    binary=st.booleans(),
)
def test_corpus_files_are_refused_or_decoded_exactly(tmp_path_factory, data, encoding, binary):
    path = tmp_path_factory.mktemp("corpus") / "doc.txt"
    if binary:
        data = data + b"\x00\x01\x02\x00"
    path.write_bytes(data)
    TRIED["load_corpus(file)"] += 1
    try:
        corpus = load_corpus(path, encoding=encoding)
    except (ValueError, TypeError) as error:
        assert str(error).strip()
        REFUSED["load_corpus(file)"] += 1
        return
    assert not binary and encoding != "no-such-codec"
    text = data.decode(encoding).replace("\r\n", "\n")
    for document in corpus.train + corpus.validation + corpus.test:
        assert document in text  # decoded as declared: no replacement characters, nothing invented
    ACCEPTED["load_corpus(file)"] += 1


@FUZZ
@given(source=st.one_of(st.just(""), st.just("   "), st.text(max_size=12).map(lambda s: f"/nonexistent/{s}")))
def test_corpus_sources_that_name_nothing_are_refused(source):
    refused("load_corpus(source)", load_corpus, source)


@FUZZ
@given(source=st.one_of(st.integers(), st.floats(), st.lists(st.text(), max_size=2), st.binary(max_size=4)))
def test_corpus_sources_of_the_wrong_type_are_refused(source):
    refused("load_corpus(source)", load_corpus, source)


# ------------------------------------------------------------------------------------------ level specs
@FUZZ
@given(
    spec=st.one_of(
        st.just([]),
        st.text(max_size=5),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.lists(st.one_of(st.text(max_size=6), st.integers(), st.none()), min_size=1, max_size=3).filter(
            lambda items: any(item not in LEVEL_NAMES for item in items)
        ),
        st.lists(st.dictionaries(level_fields, bad_field_values, max_size=4), min_size=1, max_size=2),
    ),
    family=st.sampled_from(["maze", "copy", "repeat_copy", "associative", "needle"]),
)
def test_level_specs_are_refused_by_name(spec, family):
    if family == "maze":
        refused("MazeTask.from_spec", MazeTask.from_spec, spec)
    else:
        recall = FAMILIES[family]
        refused("levels_from_spec", levels_from_spec, spec, recall.default_levels(), recall.level_cls, family)


@FUZZ
@given(length=st.integers(262_145, 10**12), vocab=st.integers(2, 256), repeats=st.integers(1, 16))
def test_recall_levels_beyond_the_size_cap_fail_fast(length, vocab, repeats):
    refused("CopyLevel", CopyLevel, "huge", length, vocab)
    refused("RepeatCopyLevel", RepeatCopyLevel, "huge", length // 16, vocab, repeats=16)
    ladder = LevelLadder([CopyLevel("ok", 4, 4)], CopyLevel)
    refused("LevelLadder.index", ladder.index, {"name": "huge", "length": length, "vocab": vocab})
    assert len(ladder) == 1


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    state = {"model": model.state_dict(), "step": 7, "config": {"lr": 1e-3, "name": "fuzz"}}
    path = save_checkpoint(state, tmp_path_factory.mktemp("ckpt") / "latest.pt")
    return path, state


def same_payload(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same_payload(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@FUZZ
@given(data=st.data())
def test_damaged_checkpoints_are_refused_or_load_unchanged(saved_checkpoint, tmp_path_factory, data):
    path, state = saved_checkpoint
    blob = path.read_bytes()
    damage = data.draw(st.sampled_from(["flip", "truncate", "random", "empty"]))
    if damage == "flip":
        at = data.draw(st.integers(0, len(blob) - 1))
        bit = data.draw(st.integers(0, 7))
        blob = blob[:at] + bytes([blob[at] ^ (1 << bit)]) + blob[at + 1 :]
    elif damage == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif damage == "random":
        blob = data.draw(st.binary(max_size=200))
    else:
        blob = b""
    target = tmp_path_factory.mktemp("damaged") / "latest.pt"
    target.write_bytes(blob)
    TRIED[f"load_checkpoint({damage})"] += 1
    try:
        loaded = load_checkpoint(target)
    except CheckpointError as error:
        assert str(error).strip()
        REFUSED[f"load_checkpoint({damage})"] += 1
        return
    assert same_payload(loaded, state)  # a byte outside the payload (e.g. zip padding) may change
    ACCEPTED[f"load_checkpoint({damage})"] += 1


# ------------------------------------------------------------------------------------------ runner configs
@functools.cache
def composed_config(runner: str) -> Any:
    """The runner's default config as Hydra composes it (read only)."""
    return compose_config(runner, tiny=False)


@functools.cache
def runner_config(runner: str) -> dict[str, Any]:
    """The runner's default config resolved to plain data."""
    return OmegaConf.to_container(composed_config(runner), resolve=True)


def numeric_paths(runner: str) -> list[str]:
    """Every numeric setting of trainer, hardware, task and engine: the config's int and float leaves, and
    the settings that default to null but take a number."""
    leaves = flatten(runner_config(runner))
    numeric = [
        path
        for path, value in leaves.items()
        if path.split(".")[0] in ("trainer", "hardware", "task", "engine")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ]
    return sorted(set(numeric) | set(RULES[runner]))


def with_value(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return out


bad_numbers = st.one_of(
    st.integers(max_value=-1),
    st.floats(max_value=-1e-9, allow_nan=False),
    st.just(float("nan")),
    st.just(float("-inf")),
    st.booleans(),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def beyond(rule: Rule) -> st.SearchStrategy:
    """Values that break one field's own rule: at or past its bounds, fractions for ints, null where a
    number is required."""
    options = [bad_numbers]
    if rule.low is not None:
        options.append(st.just(rule.low) if rule.low_open else st.floats(max_value=rule.low - 1e-9))
    if rule.high is not None:
        options.append(st.just(rule.high) if rule.high_open else st.floats(min_value=rule.high + 1e-6))
    if rule.kind == "int":
        options.append(st.floats(1.0, 1e6).filter(lambda v: v != int(v)))
    if not rule.optional:
        options.append(st.none())
    if not rule.allow_inf:
        options.append(st.just(float("inf")))
    return st.one_of(options).filter(lambda v: not rule.holds(v))


@FUZZ
@given(data=st.data(), runner=st.sampled_from(TRAINING_RUNNERS))
def test_runner_configs_refuse_bad_numbers_by_name(data, runner):
    path = data.draw(st.sampled_from(numeric_paths(runner)))
    rule = RULES[runner].get(path)
    value = data.draw(beyond(rule) if rule is not None else bad_numbers)
    config = with_value(runner_config(runner), path, value)
    before = copy.deepcopy(config)
    error = refused(f"validate({runner} config)", validate, config, runner)
    assert path in str(error), (path, value, str(error))
    assert config == before or value != value  # nan != nan: the config is compared field by field
    validate(runner_config(runner), runner)  # the default config still passes: nothing was changed


@FUZZ
@given(data=st.data(), runner=st.sampled_from(TRAINING_RUNNERS))
def test_runner_configs_accept_every_number_their_rules_allow(data, runner):
    path = data.draw(st.sampled_from(sorted(RULES[runner])))
    rule = RULES[runner][path]
    number = st.integers(0, 10**6) if rule.kind == "int" else st.floats(0, 1e6, allow_nan=False)
    value = data.draw(st.one_of(number, st.none()).filter(rule.holds))
    config = with_value(runner_config(runner), path, value)
    TRIED[f"validate({runner} config)"] += 1
    try:
        validate(config, runner)
    except ValueError as error:  # only a rule between fields may refuse it (temperature > min_temperature)
        assert f"{path} must be" not in str(error), str(error)
        REFUSED[f"validate({runner} config)"] += 1
        return
    ACCEPTED[f"validate({runner} config)"] += 1


@FUZZ
@given(data=st.data(), runner=st.sampled_from(TRAINING_RUNNERS), plus=st.booleans())
def test_misspelt_keys_on_the_command_line_are_refused_with_the_closest_key(data, runner, plus):
    paths = [p for p in flatten(runner_config(runner)) if "params." not in p and "_weights." not in p]
    path = data.draw(st.sampled_from(paths))
    parent, _, key = path.rpartition(".")
    at = data.draw(st.integers(0, len(key)))
    typo = key[:at] + data.draw(st.sampled_from(["x", "s", "_", "e"])) + key[at + 1 :]
    misspelt = f"{parent}.{typo}" if parent else typo
    if typo in {p.rpartition(".")[2] for p in flatten(runner_config(runner)) if p.startswith(parent)}:
        return  # the typo is another real key
    line = f"{'+' if plus else ''}{misspelt}=1"
    error = refused(f"check_overrides({runner})", check_overrides, runner, [line])
    assert f"Key '{typo}' not in" in str(error) and "To append" not in str(error)


@FUZZ
@given(data=st.data(), runner=st.sampled_from(TRAINING_RUNNERS))
def test_a_resume_refuses_every_unsafe_change_by_name(data, runner):
    saved = runner_config(runner)
    leaves = {
        p: v
        for p, v in flatten(saved).items()
        if p not in RESUME_SAFE and p != "resume" and isinstance(v, bool | int | float | str)
    }
    path = data.draw(st.sampled_from(sorted(leaves)))
    old = leaves[path]
    new = (not old) if isinstance(old, bool) else old + (1 if not isinstance(old, str) else "x")
    current = OmegaConf.merge(OmegaConf.structured(schema_of(runner)), with_value(saved, path, new))
    error = refused(
        f"resume_config({runner})", resume_config, saved, current, composed_config(runner), runner
    )
    assert f"{path}: saved {old!r}, now {new!r}" in str(error)


# ------------------------------------------------------------------------------------------ the slow run
@pytest.mark.slow
def test_the_fuzz_with_ten_times_the_examples():
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        env={**os.environ, "MINDGYM_FUZZ": "slow"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
