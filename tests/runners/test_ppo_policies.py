"""agents.ppo_policies' maze graph encoder: it reads each cell's passages as the env defines its legal
moves, and information travels only along open passages, one cell per iteration."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.ppo_policies import ActorCritic, MazeGraphCells, compile_encoder_step, make_policy
from envs.maze import MazeTask
from envs.maze.vector import MazeVectorEnv


def grid_image(size: int, open_passages: bool, agent: tuple[int, int], goal: tuple[int, int]) -> torch.Tensor:
    """(1, 3, 2n+1, 2n+1) grid observation of an n x n maze with every passage open or every one closed."""
    pixels = 2 * size + 1
    image = torch.zeros(1, 3, pixels, pixels, dtype=torch.uint8)
    image[0, 0] = 255
    image[0, 0, 1::2, 1::2] = 0  # cells
    if open_passages:
        image[0, 0, 1:-1:2, 2:-1:2] = 0  # between horizontal neighbours
        image[0, 0, 2:-1:2, 1:-1:2] = 0  # between vertical neighbours
    image[0, 1, 2 * agent[0] + 1, 2 * agent[1] + 1] = 255
    image[0, 2, 2 * goal[0] + 1, 2 * goal[1] + 1] = 255
    return image


def agent_reads(encoder: MazeGraphCells, image: torch.Tensor) -> torch.Tensor:
    """The features read at the agent's cell and its four neighbours (not the global max-pool)."""
    return encoder(image)[:, : 5 * encoder.channels]


def test_graph_encoder_reads_the_legal_moves_of_padded_mazes():
    task = MazeTask.from_spec([{"name": "3x3", "height": 3, "width": 3}, "5x5", "8x8"], level=0)
    env = MazeVectorEnv(32, task=task, device="cpu", obs_mode="grid", seed=3, pool_size=32)
    for level in range(3):  # smaller mazes sit in the corner of the 8x8 image, padded with walls
        env.set_level(level)
        obs, _ = env.reset()
        for _ in range(4):
            inputs, passages = MazeGraphCells.cell_inputs(obs)
            at_agent = (passages * inputs[..., :1]).sum((1, 2)).bool()
            assert torch.equal(at_agent, env.action_masks())
            assert torch.equal(inputs[..., 2].sum((1, 2)), torch.full((32,), float(task.ladder[level].cells)))
            obs, *_ = env.step(torch.randint(4, (32,)))


def test_neighbours_are_in_action_order_with_zeros_off_the_grid():
    cells = torch.arange(1.0, 7.0).view(1, 2, 3, 1)  # a 2x3 grid numbered 1..6 row by row
    up, right, down, left = (n.flatten().tolist() for n in MazeGraphCells.neighbours(cells))
    assert up == [0, 0, 0, 1, 2, 3]
    assert right == [2, 3, 0, 5, 6, 0]
    assert down == [4, 5, 6, 0, 0, 0]
    assert left == [0, 1, 2, 0, 4, 5]


def test_information_travels_only_along_open_passages_one_cell_per_iteration():
    torch.manual_seed(0)
    encoder = MazeGraphCells(channels=8, iterations=3)
    near, far = (0, 3), (3, 3)  # goal 3 cells (2 from the agent's right neighbour) or 6 cells away
    with torch.no_grad():
        walled = [agent_reads(encoder, grid_image(4, False, (0, 0), goal)) for goal in (near, far)]
        opened = [agent_reads(encoder, grid_image(4, True, (0, 0), goal)) for goal in (near, far)]
    assert torch.equal(walled[0], walled[1])  # closed walls: the goal's place never reaches the agent
    assert not torch.allclose(opened[0], opened[1])  # open: the near goal is within 3 iterations
    encoder.iterations = 1
    with torch.no_grad():
        short = [agent_reads(encoder, grid_image(4, True, (0, 0), goal)) for goal in (near, far)]
    assert torch.equal(short[0], short[1])  # one iteration: neither goal is within reach


def test_maze_graph_on_a_token_stream_is_refused_with_the_kind_to_use():
    fix = r"policy\.kind=maze_graph reads maze grid images; a token stream needs policy\.kind=gru"
    with pytest.raises(ValueError, match=fix):
        make_policy(gym.spaces.Discrete(5), 3, kind="maze_graph")


def encoder_features(net: ActorCritic, obs: torch.Tensor) -> torch.Tensor:
    """The encoder's output as :class:`ActorCritic` computes it (bf16 autocast on CUDA when set): values in
    [-1, 1], where the logits of a fresh policy are ~0.01 and hide any difference."""
    with torch.no_grad(), torch.autocast("cuda", torch.bfloat16, enabled=net.bf16 and obs.is_cuda):
        return net.encoder(obs).float()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["maze_cnn", "maze_graph"])
def test_compiled_encoder_update_computes_what_the_eager_one_does(kind):
    space = gym.spaces.Box(0, 255, (3, 9, 9), np.uint8)
    net = make_policy(space, 4, kind=kind, channels=8, iterations=4)
    obs = torch.cat([grid_image(4, True, (0, 0), (3, 3)), grid_image(4, False, (1, 2), (0, 3))])
    eager = encoder_features(net, obs)
    assert compile_encoder_step(net)
    assert torch.allclose(encoder_features(net, obs), eager, atol=1e-5)
    assert set(net.state_dict()) == set(make_policy(space, 4, kind=kind).state_dict())  # checkpoints load


@pytest.mark.gpu
def test_compiled_bf16_graph_encoder_trains_on_cuda_like_the_eager_one():
    """The maze8 preset's encoder settings (bf16 autocast, compiled update) on CUDA: the same features as
    eager within bf16 rounding (~4e-3 a step), and gradients reach every weight."""
    space = gym.spaces.Box(0, 255, (3, 9, 9), np.uint8)
    torch.manual_seed(0)
    net = make_policy(space, 4, kind="maze_graph", channels=16, iterations=12, bf16=True).cuda()
    obs = torch.cat([grid_image(4, True, (0, 0), (3, 3)), grid_image(4, False, (1, 2), (0, 3))]).cuda()
    eager = encoder_features(net, obs)
    assert compile_encoder_step(net)
    assert torch.allclose(encoder_features(net, obs), eager, atol=2e-2)
    state, starts = net.initial_state(2, "cuda"), torch.ones(2, dtype=torch.bool, device="cuda")
    logits, value, _ = net(obs, state, starts)
    (logits.sum() + value.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
