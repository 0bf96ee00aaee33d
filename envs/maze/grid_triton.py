"""The ``grid`` observation as one Triton kernel on CUDA: a program per sub-env copies its pool image and
marks the agent pixel.

The tensor formulation (a gather, then a select) does its index arithmetic once per observation *byte*
(which maze, which plane, which pixel), so at 131,072 sub-envs it is bound by integer math, not memory.
Here that arithmetic happens once per sub-env and each program streams a whole 1-2 KB row, so the step is
bound by writing the observations. Used only where Triton is installed (CUDA builds of torch ship it).
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only torch: kernels.grid_observation keeps the tensor formulation
    triton = None


def available(images: torch.Tensor) -> bool:
    """Whether the kernel can build ``images``' observations (a CUDA tensor and Triton installed)."""
    return triton is not None and images.is_cuda


if triton is not None:

    @triton.jit
    def _grid_rows(images, maze, agent, out, row: tl.constexpr, plane: tl.constexpr, block: tl.constexpr):
        n = tl.program_id(0)
        source = tl.load(maze + n).to(tl.int64) * row
        mark = plane + tl.load(agent + n)  # the agent's byte in the second (agent) plane
        offsets = tl.arange(0, block)
        inside = offsets < row
        pixels = tl.load(images + source + offsets, mask=inside)
        pixels = tl.where(offsets == mark, 255, pixels)
        tl.store(out + n.to(tl.int64) * row + offsets, pixels, mask=inside)


def grid_rows(images: torch.Tensor, maze: torch.Tensor, agent: torch.Tensor) -> torch.Tensor:
    """(N, P, H, W) uint8: ``images[maze]`` with byte ``agent`` of plane 1 set to 255 (``agent`` (N,) int32,
    a flat pixel index within the plane)."""
    _, planes, h, w = images.shape
    out = torch.empty((maze.shape[0], planes, h, w), dtype=images.dtype, device=images.device)
    row = planes * h * w
    _grid_rows[(maze.shape[0],)](
        images, maze, agent, out, row=row, plane=h * w, block=triton.next_power_of_2(row)
    )
    return out
