"""The ``walls`` observation: a maze's wall image written once an episode, plus the agent and goal cells.

A ``grid`` observation rewrites ``3 x (2H+1) x (2W+1)`` bytes every step although only the agent's pixel
changes. The ``walls`` mode hands over the same information the way Jumanji's Maze does: the wall plane
(written only when a sub-env starts an episode) and two (row, col) cells a step. A policy that wants the
image rebuilds it on its own device with :func:`grid_from_walls`, bit for bit the ``grid`` observation.

:func:`write_walls` is the reset-time copy in MazeVectorEnv: on CUDA one Triton program per sub-env
returns at once unless that sub-env starts an episode, so a step costs a byte read per sub-env instead
of a full image write; elsewhere it is a masked tensor copy.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch: write_walls keeps the tensor formulation
    triton = None


def grid_from_walls(
    walls: torch.Tensor, agent: torch.Tensor, goal: torch.Tensor, grid_scale: int = 1
) -> torch.Tensor:
    """The ``grid`` observation rebuilt from a ``walls`` one, for a batch: (N, 3, hp*s, wp*s) uint8.

    ``walls`` (N, hp, wp) uint8, ``agent``/``goal`` (N, 2) integer (row, col) cells; cell (r, c) sits at
    pixel (2r+1, 2c+1). ``grid_scale`` repeats every pixel as the env's ``grid_scale`` does. Works on any
    device and inside a policy's forward pass (e.g. a feature extractor on the ``walls`` observation).
    """
    if walls.dim() != 3 or agent.shape != (walls.shape[0], 2) or goal.shape != agent.shape:
        raise ValueError(
            "grid_from_walls needs walls (N, hp, wp), agent (N, 2) and goal (N, 2), got "
            f"{tuple(walls.shape)}, {tuple(agent.shape)} and {tuple(goal.shape)}."
        )
    n, hp, wp = walls.shape
    pixel = torch.arange(hp * wp, device=walls.device).view(1, hp, wp)

    def mark(cell: torch.Tensor) -> torch.Tensor:
        flat = (2 * cell[:, 0].long() + 1) * wp + 2 * cell[:, 1].long() + 1
        return (pixel == flat.view(n, 1, 1)).to(torch.uint8) * 255

    grid = torch.stack([walls.to(torch.uint8), mark(agent), mark(goal)], dim=1)
    if grid_scale > 1:
        grid = grid.repeat_interleave(grid_scale, dim=2).repeat_interleave(grid_scale, dim=3)
    return grid


def available(buffer: torch.Tensor) -> bool:
    """Whether the Triton kernel can write ``buffer`` (a CUDA tensor and Triton installed)."""
    return triton is not None and buffer.is_cuda


if triton is not None:

    @triton.jit
    def _copy_started(images, maze, mask, out, row: tl.constexpr, block: tl.constexpr):
        n = tl.program_id(0)
        if tl.load(mask + n) != 0:  # most sub-envs are mid-episode: one byte read and done
            offsets = tl.arange(0, block)
            inside = offsets < row
            source = tl.load(maze + n).to(tl.int64) * row
            pixels = tl.load(images + source + offsets, mask=inside)
            tl.store(out + n.to(tl.int64) * row + offsets, pixels, mask=inside)


def write_walls(out: torch.Tensor, images: torch.Tensor, maze: torch.Tensor, mask: torch.Tensor) -> None:
    """In place: ``out[i] = images[maze[i]]`` where ``mask[i]`` (the sub-envs starting an episode).

    ``out`` (N, hp, wp) uint8, ``images`` (mazes, hp, wp) uint8 (the pool's wall planes), ``maze`` (N,)
    int64 pool rows, ``mask`` (N,) bool. No host sync on any device.
    """
    if available(out) and not torch.compiler.is_compiling():
        # Inside torch.compile the generic masked copy below is used: Inductor cannot lower the bool->uint8
        # view this launch needs (seen on an H200 with torch 2.11), and it fuses the copy into the step.
        row = out.shape[1] * out.shape[2]
        _copy_started[(out.shape[0],)](
            images, maze, mask.view(torch.uint8), out, row=row, block=triton.next_power_of_2(row)
        )
    elif out.device.type == "cpu" and not torch.compiler.is_compiling():
        started = mask.nonzero().squeeze(1)  # on the host a nonzero costs nothing: copy only those rows
        out[started] = images[maze[started]]
    else:
        out.copy_(torch.where(mask[:, None, None], images[maze], out))
