"""Stable-Baselines3 feature extractors that plan on a maze: runners.ppo's graph encoder, or 3x3 convolutions.

:class:`MazeGraphExtractor` (the maze recipe's choice, ``recipes/sb3/maskable_ppo_maze_graph.yml``) wraps
``runners.ppo``'s ``maze_graph`` encoder, :class:`agents.ppo_policies.MazeGraphCells` (imported, not
copied): gated message passing along the maze's open passages, read at the agent's cell, its four
neighbours and a global max-pool. It learned several times faster per env step than the convolutional
encoders in the PPO runner (docs/ppo.md); its SB3 runs are in docs/maze.md#sb3-recipes.

SB3's NatureCNN (8x8 and 4x4 strided kernels) blurs an 11x11 maze image into a few numbers, and an MLP
has to learn every maze position separately; neither generalised to unseen 5x5 mazes (docs/maze.md).
:class:`MazePlannerExtractor` follows the maze's own structure instead:

1. a 3x3 convolution with stride 2 turns the thin-wall image ``(3, 2H+1, 2W+1)`` into one feature vector
   per maze cell (each cell sees its own pixel, its four walls and corners);
2. one convolutional GRU cell, applied ``iterations`` times with shared weights, passes information one
   cell per iteration (a learned Bellman-Ford sweep: the gates let walls stop it), so after k iterations a
   cell knows about everything within k moves;
3. the read-out takes the features of the agent's cell and of its four neighbours, which is what the
   choice of a move needs, with the goal's offset from the agent (rows and columns, over the maze's
   size: the direction to head in while the goal is still out of the sweeps' reach), and a linear
   layer maps them to ``features_dim``.

Both read the ``grid`` observation (an image SB3 has scaled to [0, 1]) or the ``walls`` observation (a
Dict rebuilt into the same image with :func:`envs.maze.walls.grid_from_walls`), at ``grid_scale=1``.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn
from torch.nn import functional as F

from agents.ppo_policies import MazeGraphCells
from envs.maze.walls import grid_from_walls


def _check_sizes(name: str, **sizes: int) -> None:
    """Raise, naming the recipe key that sets them, unless every one of ``sizes`` is a positive int."""
    for key, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{name} {key} must be a positive int, got {value!r}; set it in the recipe's "
                "policy_kwargs.features_extractor_kwargs."
            )


def _image_shape(observation_space: gym.Space, name: str) -> tuple[int, int]:
    """(2H+1, 2W+1) of a maze ``grid`` or ``walls`` observation space; a clear error, naming the extractor
    ``name``, for anything else."""
    if isinstance(observation_space, gym.spaces.Dict) and {"walls", "agent", "goal"} <= set(
        observation_space.spaces
    ):
        shape = observation_space["walls"].shape
    elif isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 3:
        if observation_space.shape[0] != 3:
            raise ValueError(f"{name} needs 3 grid planes, got {observation_space.shape}.")
        shape = observation_space.shape[1:]
    else:
        raise ValueError(
            f"{name} reads the maze 'grid' or 'walls' observation, got {observation_space}; "
            "make the env with env_kwargs.obs_mode=grid (or walls)."
        )
    if shape[0] % 2 == 0 or shape[1] % 2 == 0:
        raise ValueError(
            f"{name} needs the thin-wall image (2H+1, 2W+1) at grid_scale=1, got {shape}; "
            "drop env_kwargs.grid_scale."
        )
    return shape


def maze_image(observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """(N, 3, 2H+1, 2W+1) float in {0, 1} (walls, agent, goal planes) from what SB3 hands an extractor: a
    ``grid`` image (scaled to [0, 1]) or a ``walls`` Dict (float walls, agent and goal cells)."""
    if isinstance(observations, dict):
        walls = (observations["walls"] > 0).to(torch.uint8) * 255
        grid = grid_from_walls(
            walls, observations["agent"].round().long(), observations["goal"].round().long()
        )
        return grid.float() / 255
    return (observations > 0).float()


class MazePlannerExtractor(BaseFeaturesExtractor):
    """Features for a maze policy: iterated 3x3 convolutions over cells, read at the agent's cell.

    channels: feature channels per cell. iterations: GRU sweeps (one cell of reach each; use about the
    longest shortest path, e.g. 16-24 for 5x5 DFS mazes). features_dim: output size.
    """

    def __init__(
        self, observation_space: gym.Space, channels: int = 32, iterations: int = 20, features_dim: int = 128
    ):
        sizes = {"channels": channels, "iterations": iterations, "features_dim": features_dim}
        _check_sizes("MazePlannerExtractor", **sizes)
        super().__init__(observation_space, features_dim)
        self.image_shape = _image_shape(observation_space, "MazePlannerExtractor")
        self.iterations = iterations
        self.stem = nn.Conv2d(3, channels, kernel_size=3, stride=2)
        self.gates = nn.Conv2d(2 * channels, 2 * channels, kernel_size=3, padding=1)  # update, reset
        self.candidate = nn.Conv2d(2 * channels, channels, kernel_size=3, padding=1)
        self.head = nn.Sequential(nn.Linear(5 * channels + 2, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        x = maze_image(observations)
        cells = torch.relu(self.stem(x))  # (N, C, H, W): one vector per maze cell
        h = torch.zeros_like(cells)
        for _ in range(self.iterations):
            update, reset = torch.sigmoid(self.gates(torch.cat([cells, h], 1))).chunk(2, dim=1)
            new = torch.tanh(self.candidate(torch.cat([cells, reset * h], 1)))
            h = (1 - update) * h + update * new
        agent = x[:, 1:2, 1::2, 1::2]  # (N, 1, H, W): 1 at the agent's cell
        padded = F.pad(h, (1, 1, 1, 1))
        views = [
            h,
            padded[..., :-2, 1:-1],
            padded[..., 1:-1, 2:],
            padded[..., 2:, 1:-1],
            padded[..., 1:-1, :-2],
        ]
        read = [(view * agent).sum(dim=(2, 3)) for view in views]  # here, up, right, down, left
        return self.head(torch.cat([*read, self.goal_offset(agent, x[:, 2:3, 1::2, 1::2])], dim=1))

    @staticmethod
    def goal_offset(agent: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(N, 2): (goal row - agent row, goal col - agent col) / (H, W) from the one-hot cell planes."""
        h, w = agent.shape[-2:]
        rows = torch.arange(h, device=agent.device, dtype=agent.dtype).view(1, 1, h, 1) / h
        cols = torch.arange(w, device=agent.device, dtype=agent.dtype).view(1, 1, 1, w) / w
        diff = goal - agent
        return torch.cat([(diff * rows).sum(dim=(2, 3)), (diff * cols).sum(dim=(2, 3))], dim=1)


class MazeGraphExtractor(BaseFeaturesExtractor):
    """Features for a maze policy from ``runners.ppo``'s ``maze_graph`` encoder (:class:`MazeGraphCells`).

    channels: state size per cell. iterations: message-passing rounds (one cell of reach each; about the
    longest shortest path of the mazes, 24 for 5x5 DFS mazes). The features (``6 * channels``) are the
    states of the agent's cell and its four neighbours in action order, and a max-pool over all cells; the
    weights are the encoder's own, initialised as the PPO runner initialises them (keep the policy's
    ``ortho_init: false`` to leave them so).
    """

    def __init__(self, observation_space: gym.Space, channels: int = 16, iterations: int = 24):
        _check_sizes("MazeGraphExtractor", channels=channels, iterations=iterations)
        _image_shape(observation_space, "MazeGraphExtractor")
        cells = MazeGraphCells(channels, iterations)
        super().__init__(observation_space, cells.width)
        self.cells = cells

    def forward(self, observations: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        return self.cells(maze_image(observations))
