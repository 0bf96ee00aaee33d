"""MazeTask: the maze family's levels, generator, oracle and supervised sampler in one object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from envs.common.task import LevelLike, SupervisedBatch, Task, levels_from_spec
from envs.maze import tokens as tok
from envs.maze.generators import generate_mazes
from envs.maze.grid import MazeBatch
from envs.maze.layout import layout_level, parse_layout
from envs.maze.levels import MazeLevel, default_levels, generator_variants
from envs.maze.validity import allowed_targets, width_table


class MazeTask(Task[MazeLevel]):
    """Shortest-path navigation in mazes; ``horizons`` sets K of the multi-horizon targets (1 = next move)."""

    level_cls = MazeLevel

    def __init__(self, levels: Sequence[MazeLevel] | None = None, level: LevelLike = 0, horizons: int = 1):
        super().__init__(levels, level)
        if not isinstance(horizons, int) or horizons < 1:
            raise ValueError(f"horizons must be an int >= 1, got {horizons!r}.")
        self.horizons = horizons

    @classmethod
    def from_spec(cls, spec: Sequence[Any] | None, level: LevelLike = 0, horizons: int = 1) -> MazeTask:
        """The task a config describes: ``spec`` lists default level names (``"8x8"``) or MazeLevel field
        mappings; None is the default ladder."""
        return cls(levels_from_spec(spec, default_levels(), MazeLevel, "maze"), level, horizons)

    @classmethod
    def for_env(
        cls,
        levels: Sequence[MazeLevel] | None,
        level: LevelLike,
        maze: str | Sequence[str] | np.ndarray | None,
        horizons: int = 1,
    ) -> MazeTask:
        """The task an env plays: a ``maze`` from outside becomes its level (and, with no ``levels``, the
        whole ladder, so observations are sized to that maze)."""
        if maze is None:
            return cls(levels, level, horizons)
        fixed = layout_level(maze)
        task = cls(levels or [fixed], horizons=horizons)
        task.set_level(fixed)
        return task

    @classmethod
    def default_levels(cls) -> list[MazeLevel]:
        return default_levels()

    def with_variants(self, generators: Sequence[str]) -> MazeTask:
        """This ladder followed by each level drawn by the other ``generators`` (:func:`generator_variants`),
        at this task's horizons: the mazes a full evaluation walks."""
        ladder = list(self.ladder)
        return MazeTask(ladder + generator_variants(ladder, generators), horizons=self.horizons)

    def steps_for_epochs(self, epochs: float, batch_size: int) -> int:
        """Fresh mazes have no epochs: ``trainer.epochs`` needs fixed sets (``envs.maze.fixed``)."""
        raise ValueError(
            "trainer.epochs counts passes over a fixed training set; set task.train_mazes (e.g. "
            "task.train_mazes=400 task.test_mazes=80) or use trainer.steps instead."
        )

    def maze_shape(self) -> tuple[int, int]:
        """(height, width) of the ladder's one maze size, for an encoder that reads the maze as a grid."""
        shapes = {(level.height, level.width) for level in self.ladder}
        if len(shapes) != 1:
            raise ValueError(
                f"backbone.maze_encoder reads mazes of one size, but task.levels has sizes {sorted(shapes)}; "
                "train on one size or set backbone.maze_encoder=false."
            )
        return shapes.pop()

    @property
    def vocab_size(self) -> int:
        return tok.VOCAB_SIZE

    @property
    def action_token_ids(self) -> list[int]:
        return list(tok.ACTION_TOKEN_IDS)

    def generate(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
        level: LevelLike | None = None,
    ) -> MazeBatch:
        """``n`` fresh mazes (with start, goal and distances) at ``level``."""
        return generate_mazes(self.resolve(level), n, generator, device)

    def sample_batch(
        self,
        batch_size: int,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
        level: LevelLike | None = None,
    ) -> SupervisedBatch:
        """Fresh mazes at ``level`` encoded as token sequences with oracle targets (see envs.maze.tokens).

        T = h*w + 5 + (longest path in the batch) + 1; targets are (B, T) for horizons=1, else (B, T, K)
        with ``targets[..., 0]`` the next move.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        # Without a generator the mazes are made on ``device`` itself; with one, on the generator's device.
        mazes = self.generate(batch_size, generator, device if generator is None else None, level)
        batch = tok.supervised_batch(mazes, self.horizons)
        return batch.to(device) if device is not None else batch

    def allowed_targets(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, V) bool of the next tokens allowed at each position: no move into a wall from the
        separator on (``envs.maze.validity``; the validity-aware loss, ``task.validity_loss=true``)."""
        widths = width_table((level.height, level.width) for level in self.ladder)
        return allowed_targets(tokens, widths, self.vocab_size)

    def batch_from_mazes(self, mazes: MazeBatch) -> SupervisedBatch:
        """Encode given mazes (e.g. a dataset) the same way sample_batch does."""
        return tok.supervised_batch(mazes, self.horizons)

    def batch_from_layouts(
        self, layouts: Sequence[str | Sequence[str] | np.ndarray], device: str | torch.device | None = None
    ) -> SupervisedBatch:
        """A supervised batch from mazes given as text or arrays (any mix of sizes, right-padded)."""
        if isinstance(layouts, str) or (isinstance(layouts, np.ndarray) and layouts.ndim < 3):
            raise ValueError(
                "batch_from_layouts takes a list of layouts, got a single layout; wrap it in a list."
            )
        if len(layouts) == 0:
            raise ValueError("batch_from_layouts needs at least one layout.")
        batches = [tok.supervised_batch(parse_layout(layout), self.horizons) for layout in layouts]
        batch = SupervisedBatch.concat(batches, tok.PAD)
        return batch.to(device) if device is not None else batch
