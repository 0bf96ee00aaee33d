"""The one-pass exact-path check equals a greedy rollout on perfect mazes."""

from __future__ import annotations

import pytest
import torch

from agents.backbones import BackboneConfig, build_backbone
from agents.rollout import BackbonePolicy, rollout
from agents.training.supervised import SupervisedConfig, SupervisedTrainer
from envs.maze import MazeLevel, MazeTask
from envs.maze import tokens as tok
from envs.maze.evaluate import (
    exact_paths,
    oracle_path_check,
    teacher_forced_equals_rollout,
    teacher_forced_exact,
)
from envs.maze.vector import MazeVectorEnv

LEVEL = MazeLevel("3x3", 3, 3)


def test_a_model_that_predicts_the_oracle_is_exact_and_one_wrong_move_is_not():
    mazes = MazeTask([LEVEL]).generate(64, torch.Generator().manual_seed(0))
    check = oracle_path_check(mazes)
    perfect = torch.nn.functional.one_hot(check.targets.clamp(min=0), 4).float()
    assert exact_paths(perfect, check, mask_invalid=False).all()
    spoiled = perfect.clone()
    row, col = 5, int((check.targets[5] >= 0).nonzero()[-1])  # the last move of maze 5
    spoiled[row, col] = 1.0 - spoiled[row, col]
    flags = exact_paths(spoiled, check, mask_invalid=False)
    assert not flags[row] and flags.sum() == 63
    # the oracle's moves are always legal, so masking walls never hurts a perfect prediction
    assert exact_paths(perfect, check, mask_invalid=True).all()
    assert (check.legal.gather(2, check.targets.clamp(min=0)[..., None])[..., 0] | (check.targets < 0)).all()


@pytest.fixture(scope="module")
def part_trained():
    """A small model trained briefly on 3x3: it solves some mazes and fails others."""
    torch.manual_seed(0)
    backbone = build_backbone(
        BackboneConfig(vocab_size=tok.VOCAB_SIZE, d_model=32, n_layers=2, n_heads=2, max_seq_len=64)
    )
    task, generator = MazeTask([LEVEL]), torch.Generator().manual_seed(4)
    trainer = SupervisedTrainer(backbone, SupervisedConfig(lr=3e-3, warmup_steps=0, compile="none"), 150)
    for _ in range(150):
        trainer.step(task.sample_batch(64, generator=generator))
    return backbone.eval()


@pytest.mark.parametrize("mask_invalid", [False, True])
def test_teacher_forced_exact_path_rate_matches_greedy_rollouts(part_trained, mask_invalid):
    backbone = part_trained
    n = 2048
    mazes = MazeTask([LEVEL]).generate(n, torch.Generator().manual_seed(1))
    forced = teacher_forced_exact(backbone, mazes, mask_invalid).float().mean()
    env = MazeVectorEnv(n, device="cpu", obs_mode="tokens", levels=[LEVEL], seed=2)
    policy = BackbonePolicy(
        backbone,
        action_token_ids=torch.as_tensor(tok.ACTION_TOKEN_IDS),
        greedy=True,
        mask_invalid=mask_invalid,
        stream=True,
    )
    walked = rollout(env, policy, seed=3).final["solved_optimally"].float().mean()
    assert teacher_forced_equals_rollout(LEVEL)
    assert 0.1 < float(walked) < 0.9, float(walked)  # some solved, some not: the comparison means something
    assert abs(float(forced) - float(walked)) < 0.035
