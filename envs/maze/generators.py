"""Maze generators: whole batches of mazes at one level, on any torch device.

``dfs`` (recursive backtracker) and ``prim`` run all mazes of a batch in lockstep with tensor ops, so a
batch of thousands costs about as much as one; ``wilson`` (uniform spanning tree, loop-erased random
walks) and ``division`` (recursive division) carve one maze at a time with NumPy; ``open`` grids put wall
cells at random and keep only starts that connect to the goal. Every generator draws from the given
``torch.Generator``, so a seed fixes the mazes.

The goal is the root of each carved tree (a uniformly random cell), so the tree depth is the distance to
the goal; the start is drawn uniformly among cells at least ``level.min_path`` moves away.
"""

from __future__ import annotations

import collections
from functools import lru_cache

import numpy as np
import torch

from envs.maze.grid import COL_STEP, ROW_STEP, MazeBatch, bfs_distances, device_constant, neighbours
from envs.maze.layout import parse_layout
from envs.maze.levels import GENERATORS, PERFECT_GENERATORS, MazeLevel

_BITS = (1, 2, 4, 8)
_MAX_RETRIES = 100


def generate_mazes(
    level: MazeLevel,
    n: int,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> MazeBatch:
    """``n`` mazes of ``level`` (generated on the generator's device, returned on ``device``)."""
    if not isinstance(level, MazeLevel):
        raise TypeError(f"generate_mazes needs a MazeLevel, got {type(level).__name__}.")
    if n < 1:
        raise ValueError(f"generate_mazes needs n >= 1, got {n}.")
    if generator is None:
        generator = torch.Generator(device=device or "cpu")
        generator.seed()
    if level.generator == "layout":
        one = _parsed(level.layout)
        batch = MazeBatch.cat([one] * n)
    else:
        parts, have = [], 0
        for _ in range(_MAX_RETRIES):
            mazes = _with_start(level, *_carve(level, n - have, generator), generator)
            parts.append(mazes)
            have += len(mazes)
            if have == n:
                break
        else:
            raise ValueError(
                f"Level {level.name!r}: could not find start cells {level.min_path}+ moves from the goal "
                f"after {_MAX_RETRIES} tries; lower min_path or wall_density."
            )
        batch = MazeBatch.cat(parts) if len(parts) > 1 else parts[0]
    return batch.to(device) if device is not None else batch


@lru_cache(maxsize=256)
def _parsed(layout: str) -> MazeBatch:
    return parse_layout(layout)


def _carve(level: MazeLevel, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """passages (n, cells), goal (n,), dist (n, cells) for a batch of ``n`` mazes."""
    h, w = level.height, level.width
    if level.generator == "dfs":
        return _dfs(n, h, w, gen)
    if level.generator == "prim":
        return _prim(n, h, w, gen)
    if level.generator == "open":
        return _open(n, h, w, level.wall_density, gen)
    if level.generator in ("wilson", "division"):
        rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=gen, device=gen.device)))
        carve = _wilson if level.generator == "wilson" else _division
        passages = torch.from_numpy(np.stack([carve(h, w, rng) for _ in range(n)])).to(gen.device)
        goal = torch.randint(h * w, (n,), generator=gen, device=gen.device)
        return passages, goal, bfs_distances(passages, goal, h, w)
    raise ValueError(f"Unknown generator {level.generator!r}; use one of {list(GENERATORS)}.")


def _with_start(
    level: MazeLevel, passages: torch.Tensor, goal: torch.Tensor, dist: torch.Tensor, gen: torch.Generator
) -> MazeBatch:
    """Draw a start per maze among cells >= min_path from the goal; drop mazes that have none."""
    allowed = dist >= level.min_path
    score = torch.rand(dist.shape, generator=gen, device=dist.device).masked_fill(~allowed, -1.0)
    start = score.argmax(dim=1)
    mazes = MazeBatch(level.height, level.width, passages, start, goal, dist)
    if level.min_path == 1 and level.generator in PERFECT_GENERATORS:
        return mazes  # every cell of a perfect maze is reachable, so every maze has a start: no host read
    keep = allowed.any(dim=1)
    return mazes if bool(keep.all()) else mazes.select(keep)


def _bits(device: torch.device) -> torch.Tensor:
    return device_constant(_BITS, torch.uint8, device)


def _dfs(
    n: int, h: int, w: int, gen: torch.Generator, read_now: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recursive backtracker, every maze of the batch one stack operation per sweep.

    Column ``cells`` of the state tensors is a sentinel: off-grid neighbours point at it (always visited)
    and writes that must not happen go to it, so a sweep needs no masking beyond one ``where``. A sweep is
    24 small kernels (gathers, one-column scatters, elementwise) on the (n, cells + 1) state.

    The loop may stop once every maze is fully visited (checked every 16 sweeps; later sweeps only pop
    stacks and write the sentinel). On the CPU the check is read at once; on a GPU reading it would wait
    for every queued kernel, so all sweeps run, each check's flag stays on the device with the generator
    state at that sweep, and one read at the end restores the state at the first check that held: the
    mazes and the generator's stream are the same either way, with one host read instead of one per check.
    ``read_now`` overrides that choice (None: read at once on the CPU only).
    """
    dev, cells = gen.device, h * w
    nbr, valid = neighbours(h, w, dev)
    nbr = torch.where(valid, nbr, cells)
    visited = torch.zeros(n, cells + 1, dtype=torch.bool, device=dev)
    visited[:, cells] = True
    depth = torch.zeros(n, cells + 1, dtype=torch.int32, device=dev)
    parent_dir = torch.full((n, cells + 1), -1, dtype=torch.long, device=dev)  # direction to the parent
    stack = torch.zeros(n, cells + 1, dtype=torch.long, device=dev)
    root = torch.randint(cells, (n,), generator=gen, device=dev)
    stack[:, 0] = root
    visited.scatter_(1, root[:, None], True)
    sp = torch.ones(n, dtype=torch.long, device=dev)
    read_now = dev.type == "cpu" if read_now is None else read_now
    checks: list[tuple[torch.Tensor, torch.Tensor]] = []  # (all visited, generator state) per check
    for sweep in range(2 * cells):
        top = stack.gather(1, (sp - 1).clamp_(min=0)[:, None]).squeeze(1)
        cand = nbr.index_select(0, top)
        # an empty stack (sp == 0) means the maze is fully visited, so ``ok`` is all False there already
        ok = visited.gather(1, cand).logical_not_()
        a = torch.rand(n, 4, generator=gen, device=dev).masked_fill_(~ok, -1.0).argmax(dim=1)
        go = ok.any(dim=1)
        target = torch.where(go, cand.gather(1, a[:, None]).squeeze(1), cells)[:, None]
        visited.scatter_(1, target, True)
        depth.scatter_(1, target, sp.to(torch.int32)[:, None])
        parent_dir.scatter_(1, target, (a ^ 2)[:, None])  # the opposite direction: (a + 2) % 4
        stack.scatter_(1, torch.where(go, sp, cells)[:, None], target)
        sp = torch.where(go, sp + 1, sp - 1).clamp_(min=0)
        if sweep % 16 == 15:
            done = visited.all()
            if read_now and bool(done):
                break
            if not read_now:
                checks.append((done, gen.get_state()))
    if checks:
        flags = torch.stack([done for done, _ in checks]).tolist()
        if True in flags:
            gen.set_state(checks[flags.index(True)][1])
    return _passages_from_parents(parent_dir[:, :cells], nbr), root, depth[:, :cells]


def _passages_from_parents(parent_dir: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
    """Passage bytes of a tree given each cell's direction to its parent (-1 at the root).

    A cell's bit towards its parent and its children's bits towards it are different directions, so
    adding them equals OR-ing them.
    """
    bits = device_constant(_BITS, torch.int32, parent_dir.device)
    has = parent_dir >= 0
    d = parent_dir.clamp(min=0)
    own = torch.where(has, bits[d], 0)
    parent = torch.where(has, nbr[torch.arange(parent_dir.shape[1], device=d.device), d], 0)
    back = torch.where(has, bits[(d + 2) % 4], 0)
    return own.scatter_add(1, parent, back).to(torch.uint8)


def _prim(n: int, h: int, w: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Randomised Prim: add a random frontier cell to the tree through a random tree neighbour."""
    dev, cells = gen.device, h * w
    nbr, valid = neighbours(h, w, dev)
    bits, rows = _bits(dev), torch.arange(n, device=dev)
    passages = torch.zeros(n, cells, dtype=torch.uint8, device=dev)
    visited = torch.zeros(n, cells, dtype=torch.bool, device=dev)
    depth = torch.zeros(n, cells, dtype=torch.int32, device=dev)
    root = torch.randint(cells, (n,), generator=gen, device=dev)
    visited[rows, root] = True
    flat_nbr = nbr.reshape(1, -1).expand(n, -1)
    for _ in range(cells - 1):
        tree_nbr = visited.gather(1, flat_nbr).view(n, cells, 4) & valid
        frontier = ~visited & tree_nbr.any(dim=2)
        f = torch.rand(n, cells, generator=gen, device=dev).masked_fill(~frontier, -1.0).argmax(dim=1)
        a = torch.rand(n, 4, generator=gen, device=dev).masked_fill(~tree_nbr[rows, f], -1.0).argmax(dim=1)
        parent = nbr[f, a]
        passages[rows, f] |= bits[a]
        passages[rows, parent] |= bits[(a + 2) % 4]
        visited[rows, f] = True
        depth[rows, f] = depth[rows, parent] + 1
    return passages, root, depth


def _open(
    n: int, h: int, w: int, density: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Open grid: each cell is a wall with probability ``density``; every open neighbour pair connects."""
    dev, cells = gen.device, h * w
    nbr, valid = neighbours(h, w, dev)
    blocked = torch.rand(n, cells, generator=gen, device=dev) < density
    goal = torch.rand(n, cells, generator=gen, device=dev).masked_fill(blocked, -1.0).argmax(dim=1)
    blocked[torch.arange(n, device=dev), goal] = False
    nbr_open = ~blocked.gather(1, nbr.reshape(1, -1).expand(n, -1)).view(n, cells, 4) & valid
    legal = nbr_open & ~blocked[:, :, None]
    passages = (legal.to(torch.uint8) * _bits(dev)).sum(dim=2, dtype=torch.uint8)
    passages = torch.where(blocked, 16, passages).to(torch.uint8)
    return passages, goal, bfs_distances(passages, goal, h, w)


def _wilson(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Wilson's algorithm: a uniform spanning tree from loop-erased random walks."""
    cells = h * w
    passages = np.zeros(cells, dtype=np.uint8)
    in_tree = np.zeros(cells, dtype=bool)
    in_tree[rng.integers(cells)] = True
    steps = rng.integers(0, 4, size=cells * 64).tolist()
    k = 0
    for cell in rng.permutation(cells).tolist():
        exit_dir: dict[int, int] = {}
        cur = cell
        while not in_tree[cur]:
            if k == len(steps):
                steps, k = rng.integers(0, 4, size=cells * 64).tolist(), 0
            a = steps[k]
            k += 1
            r, c = divmod(cur, w)
            nr, nc = r + ROW_STEP[a], c + COL_STEP[a]
            if 0 <= nr < h and 0 <= nc < w:
                exit_dir[cur] = a
                cur = nr * w + nc
        cur = cell
        while not in_tree[cur]:
            a = exit_dir[cur]
            nxt = cur + ROW_STEP[a] * w + COL_STEP[a]
            passages[cur] |= _BITS[a]
            passages[nxt] |= _BITS[(a + 2) % 4]
            in_tree[cur] = True
            cur = nxt
    return passages


def _division(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Recursive division: split each open chamber by a wall with one gap until chambers are 1 cell wide."""
    grid = np.zeros((h, w), dtype=np.uint8)
    grid[1:, :] |= 1
    grid[:, :-1] |= 2
    grid[:-1, :] |= 4
    grid[:, 1:] |= 8
    chambers = collections.deque([(0, 0, h, w)])
    while chambers:
        r0, c0, ch, cw = chambers.pop()
        if ch < 2 or cw < 2:
            continue
        horizontal = ch > cw or (ch == cw and rng.random() < 0.5)
        if horizontal:
            k = int(rng.integers(1, ch))
            gap = c0 + int(rng.integers(cw))
            cols = [c for c in range(c0, c0 + cw) if c != gap]
            grid[r0 + k - 1, cols] &= ~np.uint8(4)
            grid[r0 + k, cols] &= ~np.uint8(1)
            chambers.extend([(r0, c0, k, cw), (r0 + k, c0, ch - k, cw)])
        else:
            k = int(rng.integers(1, cw))
            gap = r0 + int(rng.integers(ch))
            rows = [r for r in range(r0, r0 + ch) if r != gap]
            grid[rows, c0 + k - 1] &= ~np.uint8(2)
            grid[rows, c0 + k] &= ~np.uint8(8)
            chambers.extend([(r0, c0, ch, k), (r0, c0 + k, ch, cw - k)])
    return grid.reshape(-1)
