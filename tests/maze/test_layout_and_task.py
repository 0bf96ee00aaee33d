import numpy as np
import pytest
import torch

from envs.common.task import SupervisedBatch
from envs.maze import MazeLevel, MazeTask, generate_mazes, layout_level, parse_layout, to_text
from envs.maze import tokens as tok
from envs.maze.grid import oracle_moves

TEXT = """
#######
#S    #
# ### #
#   #G#
#######
"""


def test_parse_text_layout():
    maze = parse_layout(TEXT)
    assert (maze.height, maze.width) == (5, 7)
    assert int(maze.start[0]) == 1 * 7 + 1 and int(maze.goal[0]) == 3 * 7 + 5
    assert int(maze.optimal_length[0]) == 6  # right x4, down x2
    assert int(maze.passages[0, 0]) == 16  # a wall cell


def test_numeric_and_char_arrays_equal_text():
    rows = [r for r in TEXT.split("\n") if r]
    codes = np.array([[{"#": 1, " ": 0, "S": 2, "G": 3}[ch] for ch in row] for row in rows])
    chars = np.array([list(row) for row in rows])
    for layout in (codes, chars, rows):
        maze = parse_layout(layout)
        assert torch.equal(maze.passages, parse_layout(TEXT).passages)


@pytest.mark.parametrize(
    "layout, message",
    [
        ("#S#\n#X#\n#G#", "Unknown maze character"),
        ("#S #\n#  #", "exactly one 'G'"),
        ("S#G\n ##", "cannot be reached"),
        (np.array([[0, 5], [2, 3]]), "0 open, 1 wall"),
        ("SG", "at least 2x2"),
    ],
)
def test_bad_layouts_raise_clear_errors(layout, message):
    with pytest.raises(ValueError, match=message):
        parse_layout(layout)


def test_thin_wall_text_round_trip_doubles_paths():
    mazes = generate_mazes(MazeLevel("t", 4, 5), 1, torch.Generator().manual_seed(0))
    again = parse_layout(to_text(mazes))
    assert (again.height, again.width) == (9, 11)
    assert int(again.optimal_length[0]) == 2 * int(mazes.optimal_length[0])


def test_layout_level_always_yields_its_maze():
    level = layout_level(TEXT)
    mazes = generate_mazes(level, 3)
    assert torch.equal(mazes.passages[0], mazes.passages[2]) and level.height == 5


def test_sample_batch_layout_and_next_move_targets():
    task = MazeTask(level="5x5")
    batch = task.sample_batch(8, generator=torch.Generator().manual_seed(1))
    assert isinstance(batch, SupervisedBatch)
    prefix = 25 + 5
    assert (batch.tokens[:, prefix - 1] == tok.SEP).all()
    assert batch.tokens.shape == batch.targets.shape == batch.loss_mask.shape
    # Targets are the next token wherever the loss counts; the first one is the first move.
    t = batch.tokens
    assert torch.equal(batch.targets[:, :-1][batch.loss_mask[:, :-1]], t[:, 1:][batch.loss_mask[:, :-1]])
    assert batch.loss_mask[:, prefix - 1].all() and not batch.loss_mask[:, : prefix - 1].any()
    assert set(batch.targets[batch.loss_mask].unique().tolist()) <= {*task.action_token_ids, tok.EOS}
    assert int(batch.tokens.max()) < task.vocab_size
    # Each sequence ends with EOS right after its optimal path.
    eos = (batch.tokens == tok.EOS).float().argmax(dim=1)
    assert (eos > prefix).all()


def test_multi_horizon_targets_shift_by_k():
    task = MazeTask(level="6x6", horizons=3)
    batch = task.sample_batch(4, generator=torch.Generator().manual_seed(2))
    b, t, k = batch.targets.shape
    assert k == 3 and batch.loss_mask.shape == (b, t, k)
    for h in range(3):
        m = batch.loss_mask[:, : t - 1 - h, h]
        assert torch.equal(batch.targets[:, : t - 1 - h, h][m], batch.tokens[:, 1 + h :][m])
    assert torch.equal(
        batch.targets[..., 0],
        MazeTask(level="6x6").sample_batch(4, generator=torch.Generator().manual_seed(2)).targets,
    )


def test_sample_batch_moves_follow_the_oracle():
    task = MazeTask(levels=[MazeLevel("o", 5, 5, generator="open")])
    gen = torch.Generator().manual_seed(3)
    mazes = task.generate(6, gen)
    batch = task.batch_from_mazes(mazes)
    moves, lengths = oracle_moves(mazes)
    for i in range(6):
        n = int(lengths[i])
        assert batch.tokens[i, 30 : 30 + n].tolist() == (tok.MOVE0 + moves[i, :n]).tolist()


def test_batch_from_layouts_pads_mixed_sizes():
    other = generate_mazes(MazeLevel("t", 3, 3), 1, torch.Generator().manual_seed(4))
    task = MazeTask()
    batch = task.batch_from_layouts([TEXT, to_text(other)])
    alone = task.batch_from_layouts([to_text(other)])
    n = alone.tokens.shape[1]
    assert batch.tokens.shape == (2, max(n, task.batch_from_layouts([TEXT]).tokens.shape[1]))
    assert torch.equal(batch.tokens[1, :n], alone.tokens[0])
    assert (batch.tokens[1, n:] == tok.PAD).all() and not batch.loss_mask[1, n:].any()


def test_sample_batch_rejects_bad_input():
    task = MazeTask()
    with pytest.raises(ValueError, match="batch_size"):
        task.sample_batch(0)
    with pytest.raises(ValueError, match="Unknown level name"):
        task.sample_batch(2, level="99x99")
    with pytest.raises(ValueError, match="horizons"):
        MazeTask(horizons=0)
