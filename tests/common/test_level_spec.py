"""levels_from_spec: one parser of a config's ``task.levels`` for every family (names, mappings, errors)."""

import pytest

from envs.common.task import levels_from_spec
from envs.maze import MazeLevel, MazeTask, default_levels
from envs.recall import CopyLevel, RecallTask


def test_names_mappings_and_levels_become_levels_in_order():
    custom = MazeLevel("3x3", 3, 3)
    spec = ["8x8", {"name": "4x4-prim", "height": 4, "width": 4, "generator": "prim"}, custom]
    levels = levels_from_spec(spec, default_levels(), MazeLevel, "maze")
    assert levels == [MazeLevel("8x8", 8, 8), MazeLevel("4x4-prim", 4, 4, generator="prim"), custom]


def test_none_is_the_default_ladder():
    assert levels_from_spec(None, default_levels(), MazeLevel, "maze") is None
    assert MazeTask.from_spec(None).ladder.names == [lv.name for lv in default_levels()]


@pytest.mark.parametrize(
    "spec,match",
    [
        ([], r"task\.levels is an empty list.*null for the default ladder"),
        (["9x9"], r"unknown maze level '9x9'.*'8x8'"),
        ([{"name": "x", "height": 4, "width": 4, "colour": "red"}], r"task\.levels entry.*colour"),
        ([{"name": "x", "height": 4}], r"task\.levels entry.*width"),
        ([{"name": "x", "height": 1, "width": 4}], r"task\.levels entry.*height must be an int"),
        ([3], r"task\.levels entry 3 is not a maze level"),
        ("8x8", r"task\.levels must be a list"),
    ],
)
def test_bad_specs_fail_naming_task_levels_and_the_fix(spec, match):
    with pytest.raises(ValueError, match=match):
        levels_from_spec(spec, default_levels(), MazeLevel, "maze")


def test_each_family_builds_its_task_from_a_spec():
    maze = MazeTask.from_spec(["5x5", {"name": "3x3", "height": 3, "width": 3}], level="3x3", horizons=2)
    assert maze.ladder.names == ["5x5", "3x3"] and maze.level.name == "3x3" and maze.horizons == 2
    recall = RecallTask.from_spec("copy", ["len2-v4", {"name": "len3-v4", "length": 3, "vocab": 4}], level=1)
    assert recall.family.name == "copy" and list(recall.ladder) == [
        CopyLevel("len2-v4", 2, 4),
        CopyLevel("len3-v4", 3, 4),
    ]
    assert recall.level_index == 1
    with pytest.raises(ValueError, match="unknown associative level 'len2-v4'"):
        RecallTask.from_spec("associative", ["len2-v4"])
    with pytest.raises(ValueError, match="empty list"):
        RecallTask.from_spec("needle", [])


def test_envs_take_level_names_from_the_default_ladder():
    """gym.make(..., levels=["5x5", "8x8"]) works as task.levels does; unknown names list the known ones."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers mindgym/*)

    env = gym.make("mindgym/Maze-v0", levels=["5x5", "8x8"])
    assert env.unwrapped.task.ladder.names == ["5x5", "8x8"]
    copy = RecallTask("copy")
    name = copy.ladder.names[1]
    assert RecallTask("copy", levels=[name]).ladder.names == [name]
    with pytest.raises(ValueError, match=r"Unknown level name\(s\) \['5x6'\].*'8x8'.*MazeLevel"):
        gym.make("mindgym/Maze-v0", levels=["5x6"])
