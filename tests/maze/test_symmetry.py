"""Maze symmetries for augmentation: each image is a valid maze with the image of the oracle's path."""

from __future__ import annotations

import pytest
import torch

from envs.maze import MazeLevel
from envs.maze import tokens as tok
from envs.maze.fixed import FixedMazeTask, maze_keys
from envs.maze.generators import generate_mazes
from envs.maze.grid import bfs_distances
from envs.maze.symmetry import SYMMETRIES, all_symmetries, transform


@pytest.fixture(scope="module")
def mazes():
    return generate_mazes(MazeLevel("6x6", 6, 6, min_path=5), 16, torch.Generator().manual_seed(3))


def test_every_image_is_a_consistent_maze_with_the_same_path_length(mazes):
    for k in range(SYMMETRIES):
        image = transform(mazes, k)
        assert torch.equal(image.optimal_length, mazes.optimal_length)
        assert torch.equal(bfs_distances(image.passages, image.goal, 6, 6), image.dist)  # passages agree
        bits = torch.arange(4)
        count = ((image.passages.long()[..., None] >> bits) & 1).sum(dim=(1, 2))
        assert torch.equal(count, ((mazes.passages.long()[..., None] >> bits) & 1).sum(dim=(1, 2)))
        batch = tok.supervised_batch(image)  # the oracle walks the image (raises on an impossible maze)
        assert batch.loss_mask.sum() == (mazes.optimal_length + 1).sum()


def test_the_eight_images_are_distinct_and_identity_comes_first(mazes):
    images = all_symmetries(mazes)
    assert maze_keys(images.select(torch.arange(16))) == maze_keys(mazes)
    keys = [tuple(maze_keys(transform(mazes, k))) for k in range(SYMMETRIES)]
    assert len(set(keys)) == SYMMETRIES
    assert maze_keys(transform(transform(mazes, 1), 3)) == maze_keys(mazes)  # four quarter turns


def test_non_square_mazes_are_refused():
    mazes = generate_mazes(MazeLevel("4x6", 4, 6), 2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="square"):
        transform(mazes, 1)


def test_augmented_fixed_sets_show_images_of_the_training_mazes_only():
    level = MazeLevel("5x5", 5, 5, min_path=4)
    task = FixedMazeTask([level], train_mazes=12, test_mazes=4, seed=0, augment=True)
    seen = torch.cat([task.sample_batch(12).tokens[:, : level.cells + 4] for _ in range(8)])
    prefixes = {tuple(row.tolist()) for row in seen}
    allowed = {tuple(tok.encode_prefix(transform(task.train_sets[0], k))[i, :-1].tolist())
               for k in range(SYMMETRIES) for i in range(12)}
    assert prefixes <= allowed and len(prefixes) > 12  # more than the 12 originals, nothing else
