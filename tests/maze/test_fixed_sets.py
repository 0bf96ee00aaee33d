"""Fixed train / test maze sets: distinct, disjoint, reproducible from the seed, epoch by epoch, walkable."""

from __future__ import annotations

import pytest
import torch

from agents.backbones import BackboneConfig, build_backbone
from envs.maze import MazeLevel, MazeTask
from envs.maze import tokens as tok
from envs.maze.fixed import FixedMazeTask, maze_keys
from envs.maze.grid import MazeBatch
from envs.maze.walk import greedy_walk

LEVELS = [MazeLevel("5x5", 5, 5, min_path=4), MazeLevel("6x6", 6, 6)]


def make(seed: int = 0, train: int = 40, test: int = 12, **kw) -> FixedMazeTask:
    return FixedMazeTask(LEVELS, train_mazes=train, test_mazes=test, seed=seed, **kw)


def test_sets_are_distinct_disjoint_and_follow_the_seed():
    task, again, other = make(), make(), make(seed=1)
    for i in range(len(LEVELS)):
        train, test = maze_keys(task.train_sets[i]), maze_keys(task.test_sets[i])
        assert len(train) == len(set(train)) == 40 and len(test) == len(set(test)) == 12
        assert not set(train) & set(test)
        assert train == maze_keys(again.train_sets[i]) and test == maze_keys(again.test_sets[i])
        assert train != maze_keys(other.train_sets[i])
        assert (task.train_sets[i].optimal_length >= LEVELS[i].min_path).all()


def test_too_few_distinct_mazes_is_a_clear_error():
    with pytest.raises(ValueError, match="distinct mazes"):
        FixedMazeTask([MazeLevel("2x2", 2, 2)], train_mazes=50, test_mazes=5, seed=0)


def test_an_epoch_visits_every_training_maze_once():
    task = make(train=40)
    seen = [task.sample_batch(8, level=1) for _ in range(5)]  # 5 x 8 = one epoch of level 1
    cells = LEVELS[1].cells
    prefixes = {tuple(row[: cells + tok.PREFIX_EXTRA].tolist()) for b in seen for row in b.tokens}
    assert len(prefixes) == 40
    assert task.epochs_started == [0, 1]
    task.sample_batch(8, level=1)
    assert task.epochs_started == [0, 2]
    assert task.steps_per_epoch(8) == 10.0  # both levels' 40 mazes
    assert task.steps_for_epochs(2.5, 8) == 25 and task.steps_for_epochs(1, 1000) == 1  # trainer.epochs


def test_an_encoder_reads_the_maze_shape_of_a_one_size_ladder_only():
    assert MazeTask([LEVELS[0]]).maze_shape() == (5, 5)
    with pytest.raises(ValueError, match=r"backbone\.maze_encoder=false"):
        make(train=8, test=4).maze_shape()


def test_state_restores_the_sets_and_the_place_in_the_epoch():
    task = make()
    task.sample_batch(12, level=0)
    state = task.state_dict()
    expected = task.sample_batch(12, level=0)
    other = make(seed=5)  # different sets until the saved ones are loaded
    other.load_state_dict(state)
    assert maze_keys(other.test_sets[0]) == maze_keys(task.test_sets[0])
    torch.testing.assert_close(other.sample_batch(12, level=0).tokens, expected.tokens)


def test_greedy_walk_scores_an_oracle_and_a_wall_bumper():
    task = make(test=16)
    mazes: MazeBatch = task.test_sets[0]

    class Oracle(torch.nn.Module):
        """Logits that pick the oracle's next move: the neighbour closer to the goal."""

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, tokens, return_state=False):
            logits = torch.zeros(*tokens.shape, tok.VOCAB_SIZE)
            keys = maze_keys(mazes)
            for b in range(tokens.shape[0]):
                row = tokens[b]
                index = keys.index(maze_keys(_single(row))[0])
                cell = int(mazes.start[index])
                for t in row[LEVELS[0].cells + tok.PREFIX_EXTRA :].tolist():
                    if (int(mazes.passages[index, cell]) >> (t - tok.MOVE0)) & 1:  # a wall leaves it in place
                        cell = _moved(cell, t - tok.MOVE0)
                best = min(range(4), key=lambda a: _distance(mazes, index, cell, a))
                logits[b, -1, tok.MOVE0 + best] = 1.0
            return type("Out", (), {"logits": logits})()

    result = greedy_walk(Oracle(), mazes)
    assert result.solved.all() and result.optimal.all() and result.near_optimal.all()
    assert torch.equal(result.steps, mazes.optimal_length)

    model = build_backbone(BackboneConfig(vocab_size=tok.VOCAB_SIZE, d_model=16, n_layers=1, n_heads=2))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    # all logits equal: without masking, the arg-max is "up" every step, a walk that cannot follow a path
    bumped = greedy_walk(model, mazes, mask_invalid=False, step_limit_factor=1.0)
    assert not bumped.optimal.any() and not bumped.near_optimal.any()
    assert (bumped.steps == mazes.optimal_length).all()  # stopped at the step limit


def _single(row: torch.Tensor) -> MazeBatch:
    cells = LEVELS[0].cells
    passages = (row[:cells] - tok.CELL0).to(torch.uint8)[None]
    start = (row[cells] - tok.ROW0) * 5 + row[cells + 1] - tok.COL0
    goal = (row[cells + 2] - tok.ROW0) * 5 + row[cells + 3] - tok.COL0
    return MazeBatch(5, 5, passages, start[None], goal[None], torch.zeros(1, cells, dtype=torch.int32))


def _moved(cell: int, action: int) -> int:
    return cell + (-5, 1, 5, -1)[action]


def _distance(mazes: MazeBatch, index: int, cell: int, action: int) -> int:
    if not (int(mazes.passages[index, cell]) >> action) & 1:
        return 10**6
    return int(mazes.dist[index, _moved(cell, action)])


def test_avoiding_revisits_turns_a_fixed_preference_into_a_search():
    task = FixedMazeTask([MazeLevel("5x5", 5, 5, min_path=4)], train_mazes=10, test_mazes=32, seed=0)
    model = build_backbone(BackboneConfig(vocab_size=tok.VOCAB_SIZE, d_model=16, n_layers=1, n_heads=2))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # equal logits: always the first open move
    plain = greedy_walk(model, task.test_sets[0], step_limit_factor=4.0)
    searching = greedy_walk(model, task.test_sets[0], step_limit_factor=4.0, avoid_revisits=True)
    assert not plain.solved.any()  # it shuttles between two cells
    assert searching.solved.sum() >= 5 and (searching.optimal <= searching.solved).all()
