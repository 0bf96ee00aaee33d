import pytest
import torch

from envs.maze import MazeLevel, bfs_distances, generate_mazes, oracle_moves
from envs.maze.generators import _dfs
from envs.maze.grid import COL_STEP, ROW_STEP, optimal_action_bits
from envs.maze.levels import PERFECT_GENERATORS, default_levels

from .helpers import brute_force_distance


def _edges(passages: torch.Tensor) -> torch.Tensor:
    bits = passages.masked_fill(passages == 16, 0)
    return sum(((bits >> a) & 1).long().sum(dim=1) for a in range(4)) // 2


@pytest.mark.parametrize("generator", PERFECT_GENERATORS)
@pytest.mark.parametrize("size", [(2, 2), (5, 7), (9, 9)])
def test_perfect_generators_make_spanning_trees(generator, size):
    h, w = size
    mazes = generate_mazes(MazeLevel("t", h, w, generator=generator), 6, torch.Generator().manual_seed(1))
    assert mazes.passages.shape == (6, h * w)
    assert (_edges(mazes.passages) == h * w - 1).all()
    assert (mazes.dist >= 0).all(), "every cell must connect to the goal"
    assert torch.equal(mazes.dist, bfs_distances(mazes.passages, mazes.goal, h, w))


def test_passages_are_symmetric_and_stay_inside():
    h, w = 6, 5
    mazes = generate_mazes(MazeLevel("t", h, w, generator="wilson"), 4, torch.Generator().manual_seed(2))
    p = mazes.passages.view(4, h, w)
    assert ((p[:, 0] & 1) == 0).all() and ((p[:, -1] & 4) == 0).all()
    assert ((p[:, :, 0] & 8) == 0).all() and ((p[:, :, -1] & 2) == 0).all()
    assert torch.equal((p[:, :, :-1] & 2) > 0, (p[:, :, 1:] & 8) > 0)
    assert torch.equal((p[:, :-1] & 4) > 0, (p[:, 1:] & 1) > 0)


def test_large_dfs_maze_is_perfect():
    mazes = generate_mazes(MazeLevel("big", 64, 64), 2, torch.Generator().manual_seed(3))
    assert (_edges(mazes.passages) == 64 * 64 - 1).all() and (mazes.dist >= 0).all()


@pytest.mark.parametrize("generator", ["dfs", "open"])
def test_bfs_agrees_with_brute_force(generator):
    level = MazeLevel("t", 3, 4, generator=generator, wall_density=0.2)
    mazes = generate_mazes(level, 8, torch.Generator().manual_seed(4))
    for i in range(len(mazes)):
        cells = mazes.passages[i].tolist()
        goal = int(mazes.goal[i])
        for cell in range(12):
            expect = brute_force_distance(cells, 3, 4, cell, goal) if cells[cell] != 16 else -1
            assert int(mazes.dist[i, cell]) == expect


def test_optimal_moves_include_every_shortest_direction_on_open_grids():
    level = MazeLevel("open", 5, 5, generator="open", wall_density=0.0)
    mazes = generate_mazes(level, 3, torch.Generator().manual_seed(5))
    best = optimal_action_bits(mazes.passages, mazes.dist, 5, 5)
    # On an empty grid a cell diagonal to the goal has two optimal moves.
    for i in range(3):
        goal_r, goal_c = divmod(int(mazes.goal[i]), 5)
        for cell in range(25):
            r, c = divmod(cell, 5)
            expect = sum(
                1 << a
                for a in range(4)
                if abs(r + ROW_STEP[a] - goal_r) + abs(c + COL_STEP[a] - goal_c)
                < abs(r - goal_r) + abs(c - goal_c)
            )
            assert int(best[i, cell]) == expect


def test_oracle_paths_reach_the_goal_in_the_optimal_number_of_moves():
    mazes = generate_mazes(
        MazeLevel("t", 6, 6, generator="open", wall_density=0.25), 16, torch.Generator().manual_seed(6)
    )
    moves, lengths = oracle_moves(mazes)
    assert torch.equal(lengths, mazes.optimal_length)
    for i in range(16):
        pos = int(mazes.start[i])
        for a in moves[i, : int(lengths[i])].tolist():
            assert mazes.passages[i, pos] & (1 << a)
            pos += (-6, 1, 6, -1)[a]
        assert pos == int(mazes.goal[i])


@pytest.mark.parametrize("generator", ["open", "dfs"])
def test_oracle_takes_the_first_optimal_move_at_each_cell_then_pads(generator):
    level = MazeLevel("t", 7, 7, generator=generator, wall_density=0.2)
    mazes = generate_mazes(level, 24, torch.Generator().manual_seed(11))
    moves, lengths = oracle_moves(mazes)
    best = optimal_action_bits(mazes.passages, mazes.dist, 7, 7)
    assert moves.shape[1] == int(lengths.max()) > 8  # several doubling rounds, the last one partial
    for i in range(len(mazes)):
        pos, n = int(mazes.start[i]), int(lengths[i])
        for a in moves[i, :n].tolist():  # the lowest set bit: up, right, down, left in that order
            assert a == min(b for b in range(4) if int(best[i, pos]) >> b & 1)
            pos += (-7, 1, 7, -1)[a]
        assert pos == int(mazes.goal[i]) and (moves[i, n:] == -1).all()


@pytest.mark.parametrize("n", [1, 64])
def test_dfs_reading_its_checks_at_the_end_gives_the_same_mazes_and_generator_stream(n):
    # a GPU defers the every-16-sweeps completion checks to one read at the end; the CPU reads each at once
    for seed in range(3):
        at_once, at_end = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        eager = _dfs(n, 6, 5, at_once, read_now=True)
        deferred = _dfs(n, 6, 5, at_end, read_now=False)
        assert all(torch.equal(a, b) for a, b in zip(eager, deferred, strict=True))
        assert torch.equal(at_once.get_state(), at_end.get_state())


def test_seeding_is_deterministic():
    for generator in ["dfs", "prim", "wilson", "division", "open"]:
        level = MazeLevel("t", 5, 6, generator=generator)
        a = generate_mazes(level, 4, torch.Generator().manual_seed(7))
        b = generate_mazes(level, 4, torch.Generator().manual_seed(7))
        c = generate_mazes(level, 4, torch.Generator().manual_seed(8))
        assert torch.equal(a.passages, b.passages) and torch.equal(a.start, b.start)
        assert not torch.equal(a.passages, c.passages) or not torch.equal(a.start, c.start)


def test_hard_filter_respects_min_path():
    level = MazeLevel("hard", 10, 10, min_path=40)
    mazes = generate_mazes(level, 32, torch.Generator().manual_seed(9))
    assert (mazes.optimal_length >= 40).all()


def test_default_ladder_goes_from_5x5_to_30x30_hard():
    ladder = default_levels()
    assert ladder[0].height == 5 and ladder[-1].name == "30x30-hard" and ladder[-1].min_path == 111


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"height": 1, "width": 5}, r"\[2, 128\]"),
        ({"height": 5, "width": 5, "generator": "kruskal"}, "dfs"),
        ({"height": 5, "width": 5, "min_path": 30}, "min_path"),
        ({"height": 5, "width": 5, "wall_density": 1.0}, "wall_density"),
    ],
)
def test_bad_levels_raise_value_errors_naming_the_accepted_values(fields, message):
    with pytest.raises(ValueError, match=message):
        MazeLevel("bad", **fields)
