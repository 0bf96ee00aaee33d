"""Maze geometry and the batched shortest-path oracle, in torch (any device, whole batches at once).

A maze of ``height x width`` cells is stored flat, row-major (cell ``r * width + c``), as one uint8 per
cell: bit ``a`` (1 << a) is set when moving in direction ``a`` (0 up, 1 right, 2 down, 3 left) from that
cell is legal, and the value :data:`BLOCKED` (16) marks a wall cell (open grids and mazes from outside).
Passages are symmetric. Distances are shortest-path lengths to the goal, -1 where the goal is unreachable.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import torch

ACTIONS = ("up", "right", "down", "left")
ROW_STEP = (-1, 0, 1, 0)
COL_STEP = (0, 1, 0, -1)
BLOCKED = 16
UNREACHABLE = -1


@dataclasses.dataclass(frozen=True)
class MazeBatch:
    """``n`` mazes of one size: passages (n, cells) uint8, start/goal (n,) int64, dist (n, cells) int32."""

    height: int
    width: int
    passages: torch.Tensor
    start: torch.Tensor
    goal: torch.Tensor
    dist: torch.Tensor

    def __len__(self) -> int:
        return self.passages.shape[0]

    @property
    def optimal_length(self) -> torch.Tensor:
        """Shortest-path length from start to goal, (n,) int64."""
        return self.dist.gather(1, self.start[:, None]).squeeze(1).long()

    def to(self, device: torch.device | str) -> MazeBatch:
        return dataclasses.replace(
            self, **{k: getattr(self, k).to(device) for k in ("passages", "start", "goal", "dist")}
        )

    def select(self, rows: torch.Tensor) -> MazeBatch:
        """The mazes at ``rows`` (an index or bool tensor)."""
        return dataclasses.replace(
            self, **{k: getattr(self, k)[rows] for k in ("passages", "start", "goal", "dist")}
        )

    @staticmethod
    def cat(batches: list[MazeBatch]) -> MazeBatch:
        first = batches[0]
        return dataclasses.replace(
            first,
            **{k: torch.cat([getattr(b, k) for b in batches]) for k in ("passages", "start", "goal", "dist")},
        )


def neighbours(
    height: int, width: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cells, 4) neighbour index per direction (0 where off the grid) and (cells, 4) bool: on the grid.

    Made once per size and device and shared (read-only: never write into them), so a generator or the
    oracle called per batch launches no kernels for them."""
    return _neighbours(height, width, torch.device(device))


@lru_cache(maxsize=64)
def _neighbours(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(height * width, device=device)
    row, col = idx // width, idx % width
    nbr = torch.stack([idx - width, idx + 1, idx + width, idx - 1], dim=1)
    valid = torch.stack([row > 0, col < width - 1, row < height - 1, col > 0], dim=1)
    return torch.where(valid, nbr, torch.zeros_like(nbr)), valid


def device_constant(values: tuple[int, ...], dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """``torch.tensor(values)`` on ``device``, made once and shared (read-only). Building it anew would
    copy from the host, and on a GPU a host-to-device copy waits for every queued kernel."""
    return _constant(tuple(values), dtype, torch.device(device))


@lru_cache(maxsize=256)
def _constant(values: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)


def action_bits(passages: torch.Tensor) -> torch.Tensor:
    """Legal-move mask (..., 4) bool from passage bytes (...)."""
    shifts = torch.arange(4, device=passages.device, dtype=torch.uint8)
    return ((passages.unsqueeze(-1) >> shifts) & 1).bool()


def bfs_distances(passages: torch.Tensor, goal: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Shortest-path distance (n, cells) int32 from every cell to ``goal`` (n,), -1 where unreachable.

    Synchronous Bellman-Ford relaxation over the 4 directions: after k sweeps every cell within distance k
    is exact, so it converges after (largest distance + 1) sweeps; convergence is checked every 8 sweeps.
    """
    n, cells = passages.shape
    nbr, _ = neighbours(height, width, passages.device)
    moves = action_bits(passages)  # (n, cells, 4)
    big = cells + 1
    dist = torch.full((n, cells), big, dtype=torch.int32, device=passages.device)
    dist.scatter_(1, goal[:, None], 0)
    flat_nbr = nbr.reshape(1, -1).expand(n, -1)
    for sweep in range(cells):
        through = dist.gather(1, flat_nbr).view(n, cells, 4) + 1
        relaxed = torch.minimum(dist, torch.where(moves, through, big).amin(dim=2).to(torch.int32))
        if sweep % 8 == 7 and torch.equal(relaxed, dist):
            break
        dist = relaxed
    return torch.where(dist >= big, UNREACHABLE, dist)


def optimal_action_bits(passages: torch.Tensor, dist: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(n, cells) uint8: bit a set where moving in direction a is legal and shortens the distance by one."""
    nbr, _ = neighbours(height, width, passages.device)
    n, cells = passages.shape
    nbr_dist = dist.gather(1, nbr.reshape(1, -1).expand(n, -1)).view(n, cells, 4)
    good = action_bits(passages) & (nbr_dist == (dist - 1).unsqueeze(-1)) & (dist > 0).unsqueeze(-1)
    weights = device_constant((1, 2, 4, 8), torch.uint8, passages.device)
    return (good.to(torch.uint8) * weights).sum(dim=-1, dtype=torch.uint8)


def first_set_bit(bits: torch.Tensor) -> torch.Tensor:
    """Index of the lowest set bit of each uint8 (0..3), 0 where none: the oracle's canonical move."""
    low = bits.long() & -bits.long()
    return torch.where(low >= 4, 2, 0) + torch.where((low == 2) | (low == 8), 1, 0)


def oracle_moves(mazes: MazeBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Canonical shortest paths: moves (n, max_len) int64 (action ids, -1 after the end) and lengths (n,).

    At each cell the oracle takes the first optimal action in the order up, right, down, left, so a path
    is a deterministic function of the maze, start and goal (the same rule the env's tests follow).

    The walk is computed by pointer doubling rather than one move at a time: ``jump`` maps each cell to
    the cell ``filled`` canonical moves on (a cell with no optimal move, such as the goal, maps to
    itself), so each round fills twice as many path positions with two gathers, and a path of L moves
    costs about log2(L) rounds instead of L. The only host read is the longest length (the moves' width).
    """
    best = optimal_action_bits(mazes.passages, mazes.dist, mazes.height, mazes.width)
    lengths = mazes.optimal_length
    max_len = int(lengths.max()) if len(mazes) else 0
    device = best.device
    step = device_constant((-mazes.width, 1, mazes.width, -1), torch.long, device)
    action = first_set_bit(best)  # (n, cells): the canonical move at each cell
    cell = torch.arange(best.shape[1], device=device)
    jump = torch.where(best > 0, cell + step[action], cell)
    pos = torch.empty(len(mazes), max_len, dtype=torch.long, device=device)
    filled = min(max_len, 1)
    pos[:, :filled] = mazes.start[:, None]
    while filled < max_len:
        k = min(filled, max_len - filled)
        pos[:, filled : filled + k] = jump.gather(1, pos[:, :k])
        filled += k
        if filled < max_len:
            jump = jump.gather(1, jump)
    live = torch.arange(max_len, device=device) < lengths[:, None]
    moves = torch.where(live, action.gather(1, pos), -1)
    return moves, lengths
