"""Fixed train / test maze sets: the PoH-HRM seed's protocol (400 training mazes, 80 others to test on).

MindGym's default draws fresh mazes for every batch, which asks how well a model learns from millions of
mazes. The seed asks something else: how well it generalises from a few hundred. :class:`FixedMazeTask`
is a :class:`MazeTask` whose ``sample_batch`` hands out its fixed training mazes epoch by epoch (each epoch
one shuffled pass, batches cut across epoch ends), and which keeps a disjoint fixed test set per level.
With ``augment`` each training maze comes as one of its eight rotations and mirror images, drawn afresh
each time (``envs.maze.symmetry``); the test mazes are never transformed.

The sets follow from the seed alone (drawn on the CPU, so every device gets the same mazes): each level's
training mazes are distinct, and its test mazes are distinct and none of them is a training maze (same
passages, start and goal). ``state_dict`` holds the sets themselves and the place in the epoch, so a
resumed run and ``runners.evaluate`` use exactly the mazes the run trained and was tested on.
``walk_test_set`` and ``test_report`` score a backbone's greedy walks (``envs.maze.walk``) on the test sets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from envs.common.task import LevelLike, SupervisedBatch
from envs.maze.evaluate import EVAL_MODES, level_table, path_rates
from envs.maze.generators import generate_mazes
from envs.maze.grid import MazeBatch
from envs.maze.levels import MazeLevel
from envs.maze.symmetry import SYMMETRIES, all_symmetries
from envs.maze.task import MazeTask
from envs.maze.walk import WalkResult, greedy_walk
from foundation import make_generator

MAZE_FIELDS = ("passages", "start", "goal", "dist")
MAX_ROUNDS = 50


def maze_keys(mazes: MazeBatch) -> list[bytes]:
    """One bytes key per maze (passages, start, goal): equal keys are the same task."""
    rows = torch.cat(
        [mazes.passages.long(), mazes.start[:, None].long(), mazes.goal[:, None].long()], dim=1
    )
    return [bytes(row.cpu().numpy().astype("int16").tobytes()) for row in rows]


def distinct_mazes(
    level: MazeLevel, n: int, generator: torch.Generator, exclude: set[bytes] | None = None
) -> MazeBatch:
    """``n`` distinct mazes of ``level`` none of which is in ``exclude``, drawn from ``generator``."""
    exclude = set(exclude or ())
    kept: list[MazeBatch] = []
    have = 0
    for _ in range(MAX_ROUNDS):
        mazes = generate_mazes(level, max(n - have, 8), generator)
        fresh = []
        for i, key in enumerate(maze_keys(mazes)):
            if key not in exclude and have + len(fresh) < n:
                exclude.add(key)
                fresh.append(i)
        if fresh:
            kept.append(mazes.select(torch.tensor(fresh)))
            have += len(fresh)
        if have == n:
            return MazeBatch.cat(kept)
    raise ValueError(
        f"Level {level.name!r} gave only {have} distinct mazes of the {n} asked for ({MAX_ROUNDS} rounds): "
        "it has too few different mazes; lower task.train_mazes / task.test_mazes or use a larger level."
    )


def maze_state(mazes: MazeBatch) -> dict[str, Any]:
    """A MazeBatch as plain tensors and ints (checkpoints load with weights_only=True)."""
    state: dict[str, Any] = {"height": mazes.height, "width": mazes.width}
    state.update({k: getattr(mazes, k).cpu() for k in MAZE_FIELDS})
    return state


def maze_from_state(state: dict[str, Any]) -> MazeBatch:
    return MazeBatch(int(state["height"]), int(state["width"]), *(state[k] for k in MAZE_FIELDS))


class FixedMazeTask(MazeTask):
    """A MazeTask that trains on ``train_mazes`` fixed mazes per level, epoch by epoch, and keeps
    ``test_mazes`` other fixed mazes per level for evaluation (see the module doc). The sets come from
    ``seed``; the epoch order from ``shuffle_seed`` (default ``seed``; DDP ranks pass their own)."""

    def __init__(
        self,
        levels: Sequence[MazeLevel] | None,
        level: LevelLike = 0,
        horizons: int = 1,
        *,
        train_mazes: int,
        test_mazes: int,
        seed: int,
        shuffle_seed: int | None = None,
        augment: bool = False,
    ):
        super().__init__(levels, level, horizons)
        self.augment = bool(augment)
        for name, value in (("task.train_mazes", train_mazes), ("task.test_mazes", test_mazes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}; e.g. {name}=80.")
        self.seed = int(seed)
        self.train_sets: list[MazeBatch] = []
        self.test_sets: list[MazeBatch] = []
        for lv in self.ladder:
            train = distinct_mazes(lv, train_mazes, make_generator(self.seed, f"maze/train/{lv.name}"))
            test_gen = make_generator(self.seed, f"maze/test/{lv.name}")
            self.test_sets.append(distinct_mazes(lv, test_mazes, test_gen, set(maze_keys(train))))
            self.train_sets.append(train)
        self._shuffle = make_generator(self.seed if shuffle_seed is None else shuffle_seed, "maze/epochs")
        self._encode()

    def _encode(self) -> None:
        """Each level's mazes to draw batches from (with ``augment``, all 8 images of each maze: row
        k * n + i is maze i under symmetry k), and a fresh epoch order."""
        self._images = [all_symmetries(m) if self.augment else m for m in self.train_sets]
        self._order: list[torch.Tensor | None] = [None] * len(self.train_sets)
        self._cursor = [0] * len(self.train_sets)
        self.epochs_started = [0] * len(self.train_sets)

    def steps_per_epoch(self, batch_size: int) -> float:
        """Optimiser steps one pass over every level's training set takes at ``batch_size``."""
        return sum(len(m) for m in self.train_sets) / batch_size

    def steps_for_epochs(self, epochs: float, batch_size: int) -> int:
        """Optimiser steps (at least one) that ``epochs`` passes over the training sets take: what
        ``trainer.epochs`` means as ``trainer.steps``."""
        return max(1, math.ceil(epochs * self.steps_per_epoch(batch_size)))

    def _next_rows(self, index: int, n: int) -> torch.Tensor:
        rows: list[torch.Tensor] = []
        size = len(self.train_sets[index])
        while n > 0:
            order = self._order[index]
            if order is None or self._cursor[index] >= size:
                order = torch.randperm(size, generator=self._shuffle)
                self._order[index], self._cursor[index] = order, 0
                self.epochs_started[index] += 1
            take = order[self._cursor[index] : self._cursor[index] + n]
            self._cursor[index] += len(take)
            rows.append(take)
            n -= len(take)
        return torch.cat(rows)

    def sample_batch(
        self,
        batch_size: int,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        level: LevelLike | None = None,
    ) -> SupervisedBatch:
        """The next ``batch_size`` training mazes of ``level`` in this epoch's order (``generator`` is not
        used: the order comes from the run's seed, so it is the same on every device)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        index = self.ladder.index(self.resolve(level))
        rows = self._next_rows(index, batch_size)
        if self.augment:  # each maze in one of its 8 images, drawn afresh every time it comes round
            images = torch.randint(0, SYMMETRIES, (len(rows),), generator=self._shuffle)
            rows = images * len(self.train_sets[index]) + rows
        batch = self.batch_from_mazes(self._images[index].select(rows))  # encoded as MazeTask encodes
        return batch.to(device) if device is not None else batch

    def walk_test_set(self, index: int, backbone: nn.Module, **walk: Any) -> WalkResult:
        """``backbone``'s greedy walks through level ``index``'s test mazes (``walk``: greedy_walk's
        options, e.g. ``mask_invalid``, ``step_limit_factor``, ``avoid_revisits``)."""
        return greedy_walk(backbone, self.test_sets[index], **walk)

    def test_report(self, backbone: nn.Module, **walk: Any) -> dict[str, dict[str, Any]]:
        """Solved (``success``), optimal (``exact_path``) and within-1.05x (``near_optimal``, the seed's
        "optimal") rates of ``backbone``'s greedy walks on every level's test set, with its size
        (``test_mazes``) and each level's generator and size."""
        walks = [self.walk_test_set(index, backbone, **walk) for index in range(len(self.ladder))]
        return level_table(
            (level, {**path_rates(w.optimal, w.solved, w.near_optimal), "test_mazes": len(w.solved)})
            for level, w in zip(self.ladder, walks, strict=True)
        )

    def state_dict(self) -> dict[str, Any]:
        """The sets themselves, the shuffle generator and each level's place in its epoch."""
        return {
            "levels": list(self.ladder.names),
            "train": [maze_state(m) for m in self.train_sets],
            "test": [maze_state(m) for m in self.test_sets],
            "shuffle": self._shuffle.get_state(),
            "order": [o if o is not None else torch.empty(0, dtype=torch.long) for o in self._order],
            "cursor": list(self._cursor),
            "epochs_started": list(self.epochs_started),
        }

    def load_state_dict(self, state: dict[str, Any], sets_only: bool = False) -> None:
        """Take the saved sets (and, unless ``sets_only``, the place in the epoch)."""
        if list(state["levels"]) != list(self.ladder.names):
            raise ValueError(
                f"The saved maze sets are for levels {state['levels']}, this task has {self.ladder.names}."
            )
        self.train_sets = [maze_from_state(s) for s in state["train"]]
        self.test_sets = [maze_from_state(s) for s in state["test"]]
        self._encode()
        if sets_only:
            return
        self._shuffle.set_state(state["shuffle"])
        self._order = [o if o.numel() else None for o in state["order"]]
        self._cursor = [int(c) for c in state["cursor"]]
        self.epochs_started = [int(e) for e in state["epochs_started"]]


def fixed_sets(
    task: MazeTask,
    train_mazes: int | None,
    test_mazes: int | None,
    seed: int,
    shuffle_seed: int | None = None,
    *,
    augment: bool = False,
) -> MazeTask:
    """``task`` (its ladder, level and horizons) as a FixedMazeTask when ``train_mazes`` and ``test_mazes``
    are given (sets from ``seed``, epoch order from ``shuffle_seed``), else ``task`` itself: every batch
    fresh, which ``augment`` has nothing to transform in."""
    if train_mazes is None and test_mazes is None:
        if augment:
            raise ValueError(
                "task.augment transforms a fixed training set; set task.train_mazes and task.test_mazes "
                "(fresh mazes need no augmentation)."
            )
        return task
    if train_mazes is None or test_mazes is None:
        raise ValueError(
            f"Fixed maze sets need both task.train_mazes and task.test_mazes (got {train_mazes} and "
            f"{test_mazes}); e.g. task.train_mazes=400 task.test_mazes=80."
        )
    return FixedMazeTask(
        list(task.ladder),
        task.level_index,
        task.horizons,
        train_mazes=int(train_mazes),
        test_mazes=int(test_mazes),
        seed=seed,
        shuffle_seed=shuffle_seed,
        augment=augment,
    )


def task_from_config(task_cfg: Mapping[str, Any], seed: int, shuffle_seed: int) -> MazeTask:
    """The maze task a runner's ``task`` config describes: its ladder (``levels``, ``start_level``,
    ``horizons``), as fixed train / test sets (:func:`fixed_sets`) when ``train_mazes`` and ``test_mazes``
    are set. Refuses an unknown ``eval_mode`` before anything is drawn."""
    if task_cfg["eval_mode"] not in EVAL_MODES:
        raise ValueError(f"task.eval_mode={task_cfg['eval_mode']!r} is unknown; use one of {EVAL_MODES}.")
    task = MazeTask.from_spec(
        task_cfg["levels"], level=int(task_cfg["start_level"]), horizons=int(task_cfg["horizons"])
    )
    sets = task_cfg["train_mazes"], task_cfg["test_mazes"]
    return fixed_sets(task, *sets, seed, shuffle_seed, augment=bool(task_cfg["augment"]))
