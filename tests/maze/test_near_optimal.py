"""``near_optimal``: the PoH-HRM seed's "optimal" (solved within 1.05x of the shortest path's cells), measured
beside ``exact_path`` and ``success`` by greedy walks on a fixed maze set and by vector-env rollouts."""

from __future__ import annotations

import torch

from envs.maze import tokens as tok
from envs.maze.evaluate import near_optimal, path_rates, rollout_rates
from envs.maze.layout import layout_level, parse_layout
from envs.maze.vector import MazeVectorEnv
from envs.maze.walk import greedy_walk

# A 41-cell corridor from S to G (shortest path 40 moves, 41 cells: 1.05x allows 43 cells, 42 moves), a
# one-cell dead end above column 10 (into it and back: 2 extra moves) and a two-cell one above column 20
# (4 extra moves).
CORRIDOR = "\n".join(
    [
        "#" * 20 + " " + "#" * 20,
        "#" * 10 + " " + "#" * 9 + " " + "#" * 20,
        "S" + " " * 39 + "G",
    ]
)
UP, RIGHT, DOWN, LEFT = range(4)
SCRIPTS = {
    "exact": [RIGHT] * 40,
    "short detour": [RIGHT] * 10 + [UP, DOWN] + [RIGHT] * 30,
    "long detour": [RIGHT] * 20 + [UP, UP, DOWN, DOWN] + [RIGHT] * 20,
    "unsolved": [RIGHT, LEFT] * 100,
}
#                    exact  short  long   unsolved
SOLVED = [True, True, True, False]
EXACT = [True, False, False, False]
NEAR = [True, True, False, False]
RATES = {"exact_path": 0.25, "near_optimal": 0.5, "success": 0.75}


class ScriptedWalker(torch.nn.Module):
    """A backbone whose arg-max move at the t-th move of row b is ``scripts[b][t]`` (after its script, any:
    a finished walk's moves are not taken)."""

    def __init__(self, scripts: list[list[int]], prefix: int):
        super().__init__()
        self.scripts, self.prefix = scripts, prefix
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the walk reads the device from a parameter

    def forward(self, tokens: torch.Tensor, return_state: bool = False):
        moves_so_far = tokens.shape[1] - self.prefix
        logits = torch.zeros(*tokens.shape, tok.VOCAB_SIZE)
        for b, script in enumerate(self.scripts):
            logits[b, -1, tok.MOVE0 + (script[moves_so_far] if moves_so_far < len(script) else UP)] = 1.0
        return type("Out", (), {"logits": logits})()


def test_a_short_detour_is_near_optimal_a_long_one_and_an_unsolved_walk_are_not():
    maze = parse_layout(CORRIDOR)
    assert int(maze.optimal_length[0]) == 40
    mazes = maze.select(torch.zeros(len(SCRIPTS), dtype=torch.long))
    walker = ScriptedWalker(list(SCRIPTS.values()), tok.encode_prefix(mazes).shape[1])
    walk = greedy_walk(walker, mazes, step_limit_factor=3.0)
    assert walk.solved.tolist() == SOLVED
    assert walk.optimal.tolist() == EXACT
    assert walk.near_optimal.tolist() == NEAR
    assert walk.steps.tolist() == [40, 42, 44, 120]
    rates = {k: float(v) for k, v in path_rates(walk.optimal, walk.solved, walk.near_optimal).items()}
    assert rates == RATES


def test_near_optimal_counts_cells_as_the_seed_does_and_only_solved_walks():
    # cells = moves + 1: 40 moves -> 41 cells, 1.05 x 41 = 43.05, so 42 moves pass and 43 do not; at 79
    # moves (80 cells, 84 allowed) 4 extra moves sit exactly on the threshold and pass
    steps = torch.tensor([40, 42, 43, 83, 84, 40])
    shortest = torch.tensor([40, 40, 40, 79, 79, 40])
    solved = torch.tensor([True, True, True, True, True, False])
    assert near_optimal(solved, steps, shortest).tolist() == [True, True, False, True, False, False]


def test_rollout_rates_read_near_optimal_from_the_vector_envs_episode_ends():
    env = MazeVectorEnv(len(SCRIPTS), levels=[layout_level(CORRIDOR, "corridor")], device="cpu", seed=0)
    env.reset(seed=0)
    final: dict[str, list] = {}
    done = torch.zeros(len(SCRIPTS), dtype=torch.bool)
    for t in range(200):
        actions = torch.tensor([s[t] if t < len(s) else LEFT for s in SCRIPTS.values()])
        _, _, terminated, truncated, info = env.step(actions)
        ended = (terminated | truncated) & ~done
        for key in ("success", "solved_optimally", "steps", "optimal_length"):
            final.setdefault(key, [None] * len(SCRIPTS))
            for b in ended.nonzero().flatten().tolist():
                final[key][b] = info[key][b]
        done |= ended
        if done.all():
            break
    assert done.all()
    rates = rollout_rates({k: torch.stack(v) for k, v in final.items()})
    assert {k: float(v) for k, v in rates.items()} == RATES
