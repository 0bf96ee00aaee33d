"""Regression tests of the maze hardening: refused input changes nothing, layouts keep every cell."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the ids)
from envs.maze import MazeLevel, MazeTask, layout_level, parse_layout
from envs.maze import tokens as tok
from envs.maze.grid import MazeBatch

LADDER = [MazeLevel(f"{n}x{n}", n, n) for n in (3, 4, 5, 6, 7, 8)]


def maze_vector(num_envs: int = 3) -> gym.vector.VectorEnv:
    return gym.make_vec(
        "mindgym/Maze-v0",
        num_envs,
        vectorization_mode="vector_entry_point",
        device="cpu",
        pool_size=4,
        levels=LADDER,
    )


def test_a_refused_level_does_not_poison_the_vector_env():
    env = maze_vector()
    env.reset(seed=0)
    base = env.unwrapped
    ladder = len(base.task.ladder)
    with pytest.raises(ValueError, match="no maze pool"):
        base.set_level({"name": "huge", "height": 40, "width": 40})
    assert len(base.task.ladder) == ladder  # the ladder did not grow
    env.reset()
    base.set_level(0)
    env.reset(seed=1)  # a seeded reset refills every level's pool: it used to fail here
    env.step(np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize(
    "level, env_ids, match",
    [
        (torch.tensor([1, 2]), None, r"shape \(\) or \(3,\)"),
        (torch.tensor([0, 1, 2]), [0, 1], r"shape \(\) or \(2,\)"),
        (torch.tensor([0.0, 1.0, 2.0]), None, "integer ladder indices"),
        (torch.tensor([0, 1, 99]), None, r"\[0, 5\]"),
        (1, [5], r"env_ids .* \[0, 2\], got 5"),
        (1, [-1], "env_ids"),
        (1, [True, False], "env_ids"),
        (1, 1.5, "env_ids"),
        (1, [[0, 1]], "env_ids"),
    ],
)
def test_vector_set_level_names_the_bad_argument_and_changes_nothing(level, env_ids, match):
    env = maze_vector()
    env.reset(seed=0)
    base = env.unwrapped
    before = base.next_level_ids.clone()
    with pytest.raises(ValueError, match=match):
        base.set_level(level, env_ids)
    assert torch.equal(base.next_level_ids, before)
    env.reset()
    env.step(np.ones(3, dtype=np.int64))


def test_vector_set_level_takes_ids_and_a_tensor_per_id():
    env = maze_vector()
    base = env.unwrapped
    base.set_level(torch.tensor([4, 5]), env_ids=[0, 2])
    base.set_level(3, env_ids=np.array([1]))
    assert base.next_level_ids.tolist() == [4, 3, 5]


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "7"])
def test_bad_seeds_raise_a_value_error_naming_the_seed_rule(seed):
    env, vec = gym.make("mindgym/Maze-v0"), maze_vector()
    for target in (env, vec):
        with pytest.raises(ValueError, match=r"seed must be None or an int in \[0, 2\*\*64\)"):
            target.reset(seed=seed)
    env.reset(seed=np.int64(5))  # NumPy integers are seeds too
    vec.reset(seed=np.uint32(5))


def test_a_refused_reset_leaves_the_vector_pool_as_it_was():
    env = maze_vector()
    env.reset(seed=0)
    pool = env.unwrapped.pool.passages.clone()
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(seed=3, options={"reset_mask": [True]})
    with pytest.raises(TypeError, match="dict or None"):
        env.reset(seed=3, options=[("reset_mask", None)])
    assert torch.equal(env.unwrapped.pool.passages, pool)  # a seeded reset would have refilled it


def test_single_env_refuses_a_level_too_large_for_its_observations_without_growing_the_ladder():
    env = gym.make("mindgym/Maze-v0", levels=[MazeLevel("small", 5, 5)])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="larger than this env's observations"):
        env.unwrapped.set_level({"name": "big", "height": 9, "width": 9})
    assert env.unwrapped.task.ladder.names == ["small"]
    env.step(0)


def test_all_open_edge_rows_and_columns_are_kept():
    codes = np.array([[0, 0, 0, 0], [0, 2, 1, 3], [0, 0, 0, 0]])
    maze = parse_layout(codes)
    assert (maze.height, maze.width) == (3, 4)
    assert int(maze.optimal_length[0]) == 4  # around the wall, through the open edge rows
    text = "    \n S#G\n    \n"
    assert (parse_layout(text).height, parse_layout(text).width) == (3, 4)
    level = layout_level(codes)
    assert (level.height, level.width) == (3, 4) and level.layout == text.rstrip("\n")
    column = parse_layout([" S#G ", " ### ", "     "])
    assert (column.height, column.width) == (3, 5)


@pytest.mark.parametrize("layout", ["#####\n#S G#\n###", ["#S G#", "#"], "#S\n#G#"])
def test_ragged_layouts_are_refused(layout):
    with pytest.raises(ValueError, match="same number of cells"):
        parse_layout(layout)


def test_layouts_beyond_the_size_cap_are_refused_and_tokens_stay_in_the_vocabulary():
    big = np.zeros((200, 200), dtype=np.int64)
    big[0, 0], big[0, 1] = 2, 3
    for call in (parse_layout, layout_level, lambda g: MazeTask().batch_from_layouts([g])):
        with pytest.raises(ValueError, match="at most 128x128"):
            call(big)
    edge = big[:128, :128]
    batch = MazeTask().batch_from_layouts([edge])
    assert int(batch.tokens.max()) < tok.VOCAB_SIZE
    oversized = MazeBatch(
        2,
        129,
        torch.zeros(1, 258, dtype=torch.uint8),
        torch.tensor([0]),
        torch.tensor([1]),
        torch.zeros(1, 258, dtype=torch.long),
    )
    with pytest.raises(ValueError, match="no tokens"):
        tok.encode_prefix(oversized)


def test_batch_from_layouts_refuses_a_single_layout_given_bare():
    with pytest.raises(ValueError, match="wrap it in a list"):
        MazeTask().batch_from_layouts("#####\n#S G#\n#####")
