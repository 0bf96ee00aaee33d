"""Length bucketing of prefetched draws (``CurriculumSampler(bucket=True)``): less padding, every row of a
draw once with its own targets, and weights that keep each loss position's share of the objective."""

import itertools

import pytest
import torch

from agents.backbones import build_backbone
from agents.training.supervised import SupervisedConfig, SupervisedTrainer
from bench.runner_throughput import padded_width, padding_share
from curricula import AdaptiveSchedule, CurriculumSampler, StagedSchedule
from curricula.sampler import bucket_order
from envs.common import SupervisedBatch
from envs.maze.levels import MazeLevel
from envs.maze.task import MazeTask
from tests.backbones.helpers import VOCAB, tiny

ONE_LEVEL = StagedSchedule(1, [{"level": 0}])


def draw(task: MazeTask, bucket: bool, batches: int, batch_size: int, seed: int = 0) -> list[SupervisedBatch]:
    """One prefetched draw of ``batches`` batches, handed out as a run's loop takes them."""
    sampler = CurriculumSampler(task, ONE_LEVEL, seed=0, prefetch=batches, bucket=bucket)
    generator = torch.Generator().manual_seed(seed)
    return [sampler.sample_batch(batch_size, generator=generator) for _ in range(batches)]


def full_rows(batches: list[SupervisedBatch], width: int) -> SupervisedBatch:
    """The batches' rows joined, each right-padded to ``width`` (weights dropped: rows, not batches)."""
    return SupervisedBatch.concat([SupervisedBatch(*b.parts()).padded(width) for b in batches], pad_id=0)


def row_keys(tokens: torch.Tensor) -> list[tuple[int, ...]]:
    return sorted(tuple(row) for row in tokens.tolist())


def test_bucketing_cuts_the_padding_of_a_12x12_draw_below_a_tenth():
    # maze_fast's rows (12x12, 4-step targets) in a CPU-sized draw: 8 batches of 64 from one call
    task = MazeTask.from_spec(["12x12"], horizons=4)
    plain, bucketed = draw(task, False, 8, 64), draw(task, True, 8, 64)
    assert row_keys(full_rows(plain, 270).tokens) == row_keys(full_rows(bucketed, 270).tokens)  # same rows
    assert padding_share(plain, 16, 0) > 0.15  # 64 random rows pad to the longest of them
    assert padding_share(bucketed, 16, 0) < 0.10
    assert len({padded_width(b, 16) for b in bucketed}) <= 8  # few shapes to compile: 151-269 tokens


def test_every_row_of_a_draw_comes_once_across_its_bucketed_batches_with_its_own_targets():
    task = MazeTask.from_spec(["6x6"], horizons=3)
    batches = draw(task, True, 6, 16, seed=3)
    whole = task.sample_batch(96, generator=torch.Generator().manual_seed(3))  # the same draw, in order
    width = whole.tokens.shape[1]
    joined = full_rows(batches, width)
    assert row_keys(joined.tokens) == row_keys(whole.tokens)  # each row once, none made up
    by_tokens = {tuple(row): i for i, row in enumerate(whole.tokens.tolist())}
    for i, row in enumerate(joined.tokens.tolist()):  # equal token rows have equal oracle targets
        j = by_tokens[tuple(row)]
        assert torch.equal(joined.targets[i], whole.targets[j]) and torch.equal(
            joined.loss_mask[i], whole.loss_mask[j]
        )
    lengths = [b.loss_mask.any(-1).sum(1).float() for b in batches]
    spread = max(float(x.max() - x.min()) for x in lengths)
    assert spread < float(whole.loss_mask.any(-1).sum(1).float().std())  # a batch holds rows of like lengths
    starts = [float(x.mean()) for x in lengths]
    assert starts != sorted(starts)  # the batches come shuffled, not shortest first


def test_bucket_order_cuts_the_sorted_rows_into_shuffled_batches():
    widths = torch.randperm(50, generator=torch.Generator().manual_seed(0)) % 17
    order = bucket_order(widths, 8, torch.Generator().manual_seed(1))
    assert sorted(order.tolist()) == list(range(50))
    chunks = [widths[order[i : i + 8]] for i in range(0, 50, 8)]
    assert [len(c) for c in chunks] == [8, 8, 8, 8, 8, 8, 2]  # takes of 8 rows stay within a batch
    assert int(chunks[-1].min()) >= int(widths.sort().values[-2])  # the short batch: the longest rows
    ranked = sorted(chunks, key=lambda c: int(c.min()))
    assert all(int(a.max()) <= int(b.min()) for a, b in itertools.pairwise(ranked))  # a range of widths each
    assert [int(c.min()) for c in chunks[:-1]] != sorted(int(c.min()) for c in chunks[:-1])  # shuffled
    with pytest.raises(ValueError, match="bucket_rows"):
        bucket_order(widths, 0, torch.Generator())


def test_weighted_batches_score_every_loss_position_as_random_batches_do():
    task = MazeTask.from_spec(["6x6"], horizons=3)
    batches = draw(task, True, 6, 16, seed=5)
    assert all(b.weighted for b in batches) and len({round(b.loss_weight, 6) for b in batches}) > 1

    def score(targets: torch.Tensor) -> torch.Tensor:  # any per-position quantity (a loss, a hit)
        return (targets * 7 % 5).float()

    def weighted_means(batch_size: int) -> tuple[float, float]:
        losses = [(score(b.targets) * b.loss_mask).sum() / b.loss_mask.sum() * b.loss_weight for b in batches]
        first = [b.loss_mask[..., 0] for b in batches]
        hits = [
            (score(b.targets[..., 0]) * m).sum() / m.sum() * b.accuracy_weight for b, m in zip(batches, first)
        ]
        return float(sum(losses)) / len(batches), float(sum(hits)) / len(batches)

    whole = full_rows(batches, 80)
    token_mean = float((score(whole.targets) * whole.loss_mask).sum() / whole.loss_mask.sum())
    next_mask = whole.loss_mask[..., 0]
    next_mean = float((score(whole.targets[..., 0]) * next_mask).sum() / next_mask.sum())
    loss, accuracy = weighted_means(16)
    assert loss == pytest.approx(token_mean, rel=1e-5) and accuracy == pytest.approx(next_mean, rel=1e-5)
    assert sum(b.loss_weight for b in batches) == pytest.approx(len(batches))


def test_the_trainer_scales_a_weighted_batchs_loss_gradient_and_logged_means():
    tokens = torch.randint(0, VOCAB, (4, 9), generator=torch.Generator().manual_seed(0))
    plain = SupervisedBatch(tokens[:, :-1], tokens[:, 1:], torch.ones(4, 8, dtype=torch.bool))
    weighted = SupervisedBatch(*plain.parts(), loss_weight=0.25, accuracy_weight=0.5)
    metrics = []
    for batch in (plain, weighted):
        torch.manual_seed(0)
        trainer = SupervisedTrainer(
            build_backbone(tiny()), SupervisedConfig(compile="none", grad_clip=1e9), 10
        )
        metrics.append(trainer.step(batch))
    for name, ratio in [("loss", 0.25), ("task_loss", 0.25), ("accuracy", 0.5), ("grad_norm", 0.25)]:
        key = f"supervised/{name}"
        torch.testing.assert_close(metrics[1][key], metrics[0][key] * ratio, msg=key)


def test_padding_and_moving_keep_the_weights_and_concat_refuses_weighted_parts():
    batch = SupervisedBatch(
        torch.ones(2, 3, dtype=torch.long),
        torch.ones(2, 3, dtype=torch.long),
        torch.ones(2, 3, dtype=torch.bool),
        0.5,
        2.0,
    )
    for moved in (batch.padded(8), batch.to("cpu")):
        assert (moved.loss_weight, moved.accuracy_weight) == (0.5, 2.0)
    with pytest.raises(ValueError, match="join the parts first"):
        SupervisedBatch.concat([batch, batch], pad_id=0)


def test_a_bucketing_sampler_over_several_levels_resumes_mid_draw_exactly(tmp_path):
    from foundation import load_checkpoint, save_checkpoint

    task = MazeTask([MazeLevel("3x3", 3, 3), MazeLevel("4x4", 4, 4), MazeLevel("5x5", 5, 5)], horizons=2)

    def make():
        schedule = AdaptiveSchedule(3, replay=0.5, start_level=2)
        sampler = CurriculumSampler(task, schedule, seed=0, prefetch=3, bucket=True)
        return sampler, torch.Generator().manual_seed(5)

    sampler, generator = make()
    for _ in range(4):
        sampler.sample_batch(8, generator=generator)
    save_checkpoint({"sampler": sampler.state_dict(), "gen": generator.get_state()}, tmp_path / "s.pt")
    expected = [sampler.sample_batch(8, generator=generator) for _ in range(5)]
    assert any(b.weighted for b in expected)
    resumed, generator = make()
    state = load_checkpoint(tmp_path / "s.pt")
    resumed.load_state_dict(state["sampler"])
    generator.set_state(state["gen"])
    for batch in expected:
        again = resumed.sample_batch(8, generator=generator)
        assert all(torch.equal(a, b) for a, b in zip(again.parts(), batch.parts(), strict=True))
        assert (again.loss_weight, again.accuracy_weight) == (batch.loss_weight, batch.accuracy_weight)


def test_an_unbucketed_checkpoint_resumes_unbucketed_under_a_bucketing_sampler(tmp_path):
    task = MazeTask.from_spec(["5x5"])
    plain = CurriculumSampler(task, ONE_LEVEL, seed=0, prefetch=4)
    generator = torch.Generator().manual_seed(2)
    plain.sample_batch(8, generator=generator)
    state, gen_state = plain.state_dict(), generator.get_state()
    rest = [plain.sample_batch(8, generator=generator) for _ in range(3)]  # the draw's other rows
    bucketing = CurriculumSampler(task, ONE_LEVEL, seed=0, prefetch=4, bucket=True)
    bucketing.load_state_dict(state)
    generator.set_state(gen_state)
    for batch in rest:
        again = bucketing.sample_batch(8, generator=generator)
        assert not again.weighted and torch.equal(again.tokens, batch.tokens)
    assert bucketing.sample_batch(8, generator=generator).weighted  # its next draw is bucketed


def test_maze_fast_trains_on_bucketed_weighted_batches():
    """The opt-in bucketing reaches the maze runner's sampler and trains (the preset leaves it off)."""
    from runners import maze
    from runners.ddp import DistInfo
    from tests.runners.helpers import compose_config

    small = ["backbone.d_model=32", "backbone.n_layers=1", "backbone.n_heads=2", "task.levels=[5x5]"]
    overrides = [*small, "trainer.supervised.batch_size=8", "trainer.supervised.prefetch_batches=4"]
    cfg = compose_config("maze", ["preset=maze_fast", *overrides, "trainer.supervised.bucket_by_length=true"])
    assert cfg.trainer.supervised.bucket_by_length and cfg.trainer.supervised.pad_multiple == 16
    experiment = maze.build_experiment(cfg, DistInfo())
    assert experiment.sampler.bucket and experiment.sampler.prefetch == 4
    outputs = [experiment.train_step(step) for step in range(4)]  # one draw, its four batches
    assert experiment.sampler.reservoirs[0].order is not None and experiment.sampler.reservoirs[0].left == 0
    assert all(out.tokens > 0 and torch.isfinite(out.metrics["loss"]) for out in outputs)
