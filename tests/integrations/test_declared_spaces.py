"""Maze and TextQuality observations, final observations and infos lie in their declared spaces on every
step, single and vector, in every autoreset mode (the recall ids: tests/recall/test_declared_spaces.py)."""

import pytest

from envs.maze import MazeLevel
from tests.integrations.contract import AUTORESET_MODES, play_single, play_vector

# The default ladder's maze pools, up to 30x30, take seconds to build; two small sizes check the same code.
SMALL_MAZES = {"levels": [MazeLevel("5x5", 5, 5), MazeLevel("8x8", 8, 8, generator="prim")]}
CASES = [("mindgym/Maze-v0", mode, SMALL_MAZES) for mode in ("grid", "tokens", "egocentric")] + [
    ("mindgym/TextQuality-v0", "tokens", {})
]


@pytest.mark.parametrize(("env_id", "obs_mode", "kwargs"), CASES)
def test_single_env_stays_in_its_spaces(env_id, obs_mode, kwargs):
    assert play_single(env_id, obs_mode, steps=300, **kwargs) > 0


@pytest.mark.parametrize("autoreset_mode", AUTORESET_MODES)
@pytest.mark.parametrize(("env_id", "obs_mode", "kwargs"), CASES)
def test_vector_env_stays_in_its_spaces(env_id, obs_mode, kwargs, autoreset_mode):
    assert play_vector(env_id, obs_mode, autoreset_mode, steps=300, **kwargs) > 0
