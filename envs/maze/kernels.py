"""The batched maze step as pure tensor functions, so MazeVectorEnv can run them eagerly or fused.

Each function maps state tensors to new tensors (or writes one buffer in place) with no host sync and no
Python branching on tensor values; ``torch.compile`` fuses each into a kernel or two on the GPU.
Random draws use a counter-based integer hash instead of a torch.Generator, so they compile too.
"""

from __future__ import annotations

import torch

from envs.maze import grid_triton

_M32 = 0xFFFFFFFF


def env_salt(n: int, device: torch.device) -> torch.Tensor:
    """(n,) int64 per-sub-env constants for :func:`hash_draw` (made once, outside any compiled graph)."""
    return (torch.arange(n, device=device, dtype=torch.int64) * 0x27D4EB2F) & _M32


def hash_draw(seed: torch.Tensor, counter: torch.Tensor, salt: torch.Tensor, high: int) -> torch.Tensor:
    """(n,) int64 uniform-ish in [0, high) from (seed, counter, salt): a 32-bit integer hash per sub-env.

    Every constant stays below 2**31 and every product below 2**63, so eager and compiled code agree.
    """
    x = (salt + seed + (counter & _M32) * 0x165667B1) & _M32
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & _M32
    x = ((x ^ (x >> 15)) * 0x5BD1E995) & _M32
    x = x ^ (x >> 16)
    return x % high


def transition(
    passages: torch.Tensor,
    cell_base: torch.Tensor,
    pos: torch.Tensor,
    goal: torch.Tensor,
    t: torch.Tensor,
    limit: torch.Tensor,
    actions: torch.Tensor,
    active: torch.Tensor,
    delta: torch.Tensor,
    step_cost: float,
    wall_penalty: float,
) -> tuple[torch.Tensor, ...]:
    """One move of every active sub-env: new pos, t and the reward, terminated, truncated tensors."""
    legal = ((passages[cell_base + pos].long() >> actions) & 1).bool()
    pos = torch.where(legal & active, pos + delta[actions], pos)
    t = t + active.long()
    reached = pos == goal
    terminated = reached & active
    truncated = active & ~reached & (t >= limit)
    reward = terminated.float() - step_cost * active.float() - wall_penalty * (active & ~legal).float()
    return pos, t, reward, terminated, truncated


def start_episodes(
    mask: torch.Tensor,
    level_ids: torch.Tensor,
    draw: torch.Tensor,
    maze: torch.Tensor,
    pos: torch.Tensor,
    t: torch.Tensor,
    episode: torch.Tensor,
    table: torch.Tensor,
    pool_size: int,
) -> tuple[torch.Tensor, ...]:
    """Where ``mask``: take maze ``draw`` of the sub-env's level, load its (start, goal, limit, optimal)
    row of ``table`` into ``episode``, put the agent on the start and zero the step count."""
    maze = torch.where(mask, level_ids * pool_size + draw, maze)
    episode = torch.where(mask[:, None], table[maze], episode)
    pos = torch.where(mask, episode[:, 0], pos)
    return maze, pos, t.masked_fill(mask, 0), episode


def pixel_of(cell: torch.Tensor, width: int, border: int, image_width: int) -> torch.Tensor:
    """Flat pixel index (in a bordered wall image) of each padded cell index."""
    return (2 * (cell // width) + 1 + border) * image_width + 2 * (cell % width) + 1 + border


def grid_observation(
    images: torch.Tensor, maze: torch.Tensor, pos: torch.Tensor, width: int, scale: int = 1
) -> torch.Tensor:
    """(N, 3, H*s, W*s) uint8: each sub-env's (walls, empty, goal) pool image with its agent pixel set to 255,
    every pixel repeated ``scale`` times along both axes.

    One gather and one select, so a compiled step writes each observation byte once (no scatter pass); on
    CUDA one Triton program per sub-env does both (see envs.maze.grid_triton)."""
    _, planes, h, w = images.shape
    agent = pixel_of(pos.int(), width, 0, w)  # int32 index math: cheap on a GPU, unlike int64
    if grid_triton.available(images):
        obs = grid_triton.grid_rows(images, maze, agent)
    else:
        pixel = torch.arange(h * w, device=maze.device, dtype=torch.int32).view(1, h, w)
        is_agent = (pixel == agent[:, None, None]).unsqueeze(1) & (
            torch.arange(planes, device=maze.device) == 1
        ).view(1, planes, 1, 1)
        obs = torch.where(is_agent, torch.full((), 255, dtype=images.dtype, device=maze.device), images[maze])
    if scale > 1:
        obs = obs.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return obs


def egocentric_observation(
    images: torch.Tensor, maze: torch.Tensor, pos: torch.Tensor, goal: torch.Tensor, width: int, view: int
) -> torch.Tensor:
    """(N, 2, k, k) uint8: the walls around the agent's pixel and the goal if it lies within the window."""
    n, (h, w) = maze.shape[0], images.shape[1:]
    b = view // 2
    agent, target = pixel_of(pos.int(), width, b, w), pixel_of(goal.int(), width, b, w)  # int32 index math
    steps = torch.arange(-b, b + 1, device=maze.device, dtype=torch.int32)
    window = (steps[:, None] * w + steps[None, :]).reshape(-1)
    walls = images.view(-1)[(maze * (h * w) + agent)[:, None] + window]
    dy, dx = target // w - agent // w + b, target % w - agent % w + b
    inside = (dy >= 0) & (dy < view) & (dx >= 0) & (dx < view)
    at = torch.where(inside, dy * view + dx, -1)
    window_index = torch.arange(view * view, device=maze.device, dtype=torch.int32)
    goal_mark = (window_index == at[:, None]).to(torch.uint8) * 255
    return torch.stack([walls, goal_mark], dim=1).view(n, 2, view, view)


def write_moves(moves: torch.Tensor, t: torch.Tensor, actions: torch.Tensor) -> None:
    """Record each sub-env's action at its step index ``t`` (before the step), in place.

    Inactive sub-envs write too: their slot ``t`` lies at or past their observed length (``t`` does not
    advance for them, and a reset zeroes it), so it is never read; skipping the masked read keeps this a
    one-byte write per sub-env."""
    rows = torch.arange(moves.shape[0], device=moves.device)
    moves.index_put_((rows, t.clamp(max=moves.shape[1] - 1)), actions.to(moves.dtype))


def token_observation(
    prefix: torch.Tensor,
    prefix_len: torch.Tensor,
    maze: torch.Tensor,
    moves: torch.Tensor,
    t: torch.Tensor,
    max_len: int,
    move0: int,
    pad: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``tokens`` observation: each maze's prefix from the pool, then its ``t`` moves, then padding."""
    j = torch.arange(max_len, device=maze.device, dtype=torch.int32)  # int32 index math per token
    start = prefix_len[maze].int()[:, None]
    head = prefix[maze].long()
    head = torch.nn.functional.pad(head, (0, max_len - head.shape[1]), value=pad)
    tail = moves.gather(1, (j - start).clamp(0, moves.shape[1] - 1).long()).long() + move0
    length = prefix_len[maze] + t
    tokens = torch.where(j < start, head, torch.where(j < length.int()[:, None], tail, pad))
    return tokens, length[:, None]


def step_info(
    optimal_bits: torch.Tensor,
    cell_base: torch.Tensor,
    pos: torch.Tensor,
    goal: torch.Tensor,
    t: torch.Tensor,
    optimal: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """success, solved_optimally and the (N, 4) optimal-move mask at each agent's cell."""
    success = pos == goal
    best = optimal_bits[cell_base + pos]
    shifts = torch.arange(4, device=pos.device, dtype=torch.uint8)
    return success, success & (t == optimal), ((best[:, None] >> shifts) & 1).bool()
