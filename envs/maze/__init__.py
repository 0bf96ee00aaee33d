"""The maze family: generators, shortest-path oracle, MazeTask (supervised sampler), MazeEnv, vector env."""

from envs.maze.generators import generate_mazes
from envs.maze.grid import ACTIONS, MazeBatch, bfs_distances, optimal_action_bits, oracle_moves
from envs.maze.layout import layout_level, parse_layout, to_text
from envs.maze.levels import GENERATORS, MazeLevel, default_levels
from envs.maze.task import MazeTask

__all__ = [
    "ACTIONS",
    "GENERATORS",
    "MazeBatch",
    "MazeLevel",
    "MazeTask",
    "bfs_distances",
    "default_levels",
    "generate_mazes",
    "layout_level",
    "optimal_action_bits",
    "oracle_moves",
    "parse_layout",
    "to_text",
]
