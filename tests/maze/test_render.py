"""walked_path decodes a maze token sequence into the walk the env made; rollout_figure draws it."""

import numpy as np
import pytest
import torch

from envs.maze import MazeTask, layout_level
from envs.maze import tokens as tok
from envs.maze.render import rollout_figure, walked_path
from envs.maze.vector import MazeVectorEnv

CORRIDOR = "#####\n#S  #\n### #\n#G  #\n#####"  # S at (1, 1), G at (3, 1), one corridor between them
UP, RIGHT, DOWN, LEFT = range(4)


def _tokens(moves: list[int]) -> tuple[list[int], object]:
    level = layout_level(CORRIDOR, name="corridor")
    prefix = tok.encode_prefix(MazeTask([level]).generate(1, level=0))[0].tolist()
    return prefix + [tok.MOVE0 + m for m in moves] + [tok.PAD] * 3, level


def test_a_known_walk_decodes_with_its_bump_and_revisits():
    moves = [UP, RIGHT, LEFT, RIGHT, RIGHT, DOWN, DOWN, LEFT, LEFT]
    tokens, level = _tokens(moves)
    walk = walked_path(np.asarray(tokens), level)
    assert (walk.start, walk.goal) == (6, 16) and walk.moves == moves
    assert walk.cells == [6, 6, 7, 6, 7, 8, 13, 18, 17, 16]  # the first move bumps the top wall
    assert walk.bumps == [0] and walk.revisited == [6, 7] and walk.reached_goal
    assert walk.visits[6] == 3 and walk.visits[16] == 1


def test_moves_stop_at_the_first_token_that_is_not_a_move():
    tokens, level = _tokens([RIGHT, RIGHT])
    tokens += [tok.MOVE0 + LEFT]  # after padding: not part of the walk
    assert walked_path(torch.tensor(tokens), level).cells == [6, 7, 8]


def test_the_walk_matches_the_vector_env_on_its_token_observation():
    task = MazeTask([layout_level(CORRIDOR, name="corridor")])
    env = MazeVectorEnv(1, task=task, device="cpu", pool_size=1, seed=0)
    env.reset(seed=0)
    for move in [UP, RIGHT, RIGHT, DOWN]:
        obs, *_ = env.step(torch.tensor([move]))
    assert walked_path(obs["tokens"][0], task.level).cells[-1] == int(env._pos[0])


def test_a_short_sequence_is_rejected_and_the_figure_has_a_legend():
    tokens, level = _tokens([RIGHT, RIGHT, DOWN, DOWN, LEFT, LEFT])
    with pytest.raises(ValueError, match="at least 30 tokens"):
        walked_path(tokens[:10], level)
    figure = rollout_figure(tokens, level, success=True, optimal=True)
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels[:3] == ["start", "goal", "path (dark: first step, light: last)"]
    assert "revisited cell" in labels and figure.axes[0].get_title().startswith("corridor: 6 moves, optimal")
