"""ladder_grid: each recall family's evaluation grid over its own ladder, without cells it cannot play."""

from envs.recall import AssociativeLevel, CopyLevel, NeedleLevel, RecallTask, RepeatCopyLevel, ladder_grid


def test_copy_grid_crosses_the_ladder_lengths_and_vocabularies():
    task = RecallTask("copy", levels=[CopyLevel("a", 2, 4), CopyLevel("b", 4, 8)])
    grid = ladder_grid(task)
    assert (grid.family, grid.row_name, grid.row_values, grid.col_name, grid.col_values) == (
        "copy",
        "length",
        [2, 4],
        "vocab",
        [4, 8],
    )
    assert grid.levels == [
        [CopyLevel("len2-v4", 2, 4), CopyLevel("len2-v8", 2, 8)],
        [CopyLevel("len4-v4", 4, 4), CopyLevel("len4-v8", 4, 8)],
    ]


def test_cells_longer_than_the_task_can_hold_are_empty():
    task = RecallTask("repeat_copy", levels=[RepeatCopyLevel("a", 2, 4, 4), RepeatCopyLevel("b", 4, 4, 2)])
    grid = ladder_grid(task)  # length 4 x 4 repeats needs more tokens than either ladder level
    assert grid.levels == [
        [RepeatCopyLevel("len2-v4-x2", 2, 4, 2), RepeatCopyLevel("len2-v4-x4", 2, 4, 4)],
        [RepeatCopyLevel("len4-v4-x2", 4, 4, 2), None],
    ]


def test_repeat_copy_grid_uses_the_largest_vocabulary():
    task = RecallTask("repeat_copy", levels=[RepeatCopyLevel("a", 2, 4, 2), RepeatCopyLevel("b", 3, 8, 3)])
    grid = ladder_grid(task)
    assert (grid.row_name, grid.row_values, grid.col_name, grid.col_values) == (
        "length",
        [2, 3],
        "repeats",
        [2, 3],
    )
    assert grid.levels[1][1] == RepeatCopyLevel("len3-v8-x3", 3, 8, 3)


def test_associative_cells_too_short_or_beyond_the_capacity_are_empty():
    task = RecallTask(
        "associative", levels=[AssociativeLevel("a", 2, 32, 2, 16), AssociativeLevel("b", 8, 32, 8, 32)]
    )
    grid = ladder_grid(task)
    assert (grid.row_values, grid.col_values) == ([2, 8], [16, 32])
    assert grid.levels[0] == [
        AssociativeLevel("kv2-t16", 2, 32, 2, 16),
        AssociativeLevel("kv2-t32", 2, 32, 2, 32),
    ]
    assert grid.levels[1] == [None, AssociativeLevel("kv8-t32", 8, 32, 8, 32)]  # 8 pairs need 32 tokens


def test_needle_grid_spans_five_depths_at_the_ladder_contexts():
    task = RecallTask(
        "needle", levels=[NeedleLevel("a", 128, filler="random"), NeedleLevel("b", 256, filler="random")]
    )
    grid = ladder_grid(task)
    assert (grid.row_name, grid.row_values, grid.col_values) == (
        "depth",
        [0.0, 0.25, 0.5, 0.75, 1.0],
        [128, 256],
    )
    assert grid.levels[2][1] == NeedleLevel("ctx256-d0.5", 256, depth=0.5, filler="random")
    assert all(level is not None for row in grid.levels for level in row)
