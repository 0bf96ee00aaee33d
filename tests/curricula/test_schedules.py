"""Schedules: when the adaptive frontier moves, staged knobs, mixture and learning-progress distributions."""

import pytest
import torch

from curricula import (
    AdaptiveSchedule,
    Curriculum,
    FixedSchedule,
    LearningProgressSchedule,
    MixtureSchedule,
    StagedSchedule,
    apply_knobs,
    build_schedule,
)


def feed(curriculum: Curriculum, level: int, outcomes: list[bool]) -> None:
    """Episodes ending one at a time at ``level`` with the given outcomes (sub-env 0 of 1)."""
    for ok in outcomes:
        curriculum.record(torch.tensor([level]), torch.tensor([ok]), torch.tensor([True]))


def test_adaptive_advances_only_once_threshold_and_min_episodes_are_both_met():
    curriculum = Curriculum(AdaptiveSchedule(4, threshold=0.8, min_episodes=10, window=10), seed=0)
    feed(curriculum, 0, [True] * 9)  # rate 1.0 but only 9 episodes
    assert int(curriculum.schedule.level()) == 0
    feed(curriculum, 0, [True])
    assert int(curriculum.schedule.level()) == 1
    # at level 1: enough episodes but the rate stays below the threshold
    feed(curriculum, 1, [True, False] * 10)
    assert int(curriculum.schedule.level()) == 1
    feed(curriculum, 1, [True] * 5)  # the window of 10 holds 7 successes
    assert int(curriculum.schedule.level()) == 1
    feed(curriculum, 1, [True])  # 8 of 10: the threshold
    assert int(curriculum.schedule.level()) == 2


def test_adaptive_never_passes_the_last_level():
    curriculum = Curriculum(AdaptiveSchedule(3, threshold=0.5, min_episodes=2, window=4), seed=0)
    for level in (0, 1, 2, 2, 2):
        feed(curriculum, level, [True] * 4)
    assert int(curriculum.schedule.level()) == 2
    assert int(curriculum.schedule.changes) == 2


def test_adaptive_steps_back_below_the_floor_only_when_configured():
    for floor, expected in ((0.3, 0), (None, 1)):
        curriculum = Curriculum(
            AdaptiveSchedule(3, threshold=0.8, min_episodes=5, floor=floor, window=5), seed=0
        )
        feed(curriculum, 0, [True] * 5)
        assert int(curriculum.schedule.level()) == 1
        feed(curriculum, 1, [False] * 4)  # fewer than min_episodes: no judgement yet
        assert int(curriculum.schedule.level()) == 1
        feed(curriculum, 1, [False])
        assert int(curriculum.schedule.level()) == expected


def test_moving_clears_the_window_of_the_new_level_so_old_successes_do_not_count():
    curriculum = Curriculum(AdaptiveSchedule(3, threshold=0.8, min_episodes=5, floor=0.3, window=5), seed=0)
    feed(curriculum, 0, [True] * 5)
    feed(curriculum, 1, [False] * 5)  # back to 0, whose window of five successes is forgotten
    assert int(curriculum.schedule.level()) == 0
    assert curriculum.stats.counts()[0] == 0
    feed(curriculum, 0, [True] * 4)
    assert int(curriculum.schedule.level()) == 0


def test_adaptive_keeps_the_replay_share_on_earlier_levels():
    schedule = AdaptiveSchedule(4, replay=0.3, start_level=2)
    assert schedule.probabilities().tolist() == pytest.approx([0.15, 0.15, 0.7, 0.0])
    assert AdaptiveSchedule(4, replay=0.3).probabilities().tolist() == [1.0, 0.0, 0.0, 0.0]
    levels = schedule.sample(20000, torch.Generator().manual_seed(0))
    share = torch.bincount(levels, minlength=4).float() / 20000
    assert share.tolist() == pytest.approx([0.15, 0.15, 0.7, 0.0], abs=0.02)


def test_mixture_is_centred_on_the_frontier():
    probs = MixtureSchedule(7, spread=1.0, start_level=3).probabilities()
    assert int(probs.argmax()) == 3
    assert (
        probs[2] == pytest.approx(probs[4])
        and probs[1] < probs[2]
        and float(probs.sum()) == pytest.approx(1.0)
    )


@pytest.mark.parametrize("weighting", ["proportional", "sigmoid"])
def test_learning_progress_prefers_the_level_whose_success_rate_changes(weighting):
    curriculum = Curriculum(LearningProgressSchedule(3, ema=0.2, explore=0.0, weighting=weighting), seed=0)
    for t in range(40):
        feed(curriculum, 0, [True])  # always solved: progress fades
        feed(curriculum, 1, [t % 4 != 0 or t > 20])  # improving
        feed(curriculum, 2, [False])  # never solved: no progress
    schedule = curriculum.schedule
    probs = schedule.probabilities()
    assert int(probs.argmax()) == 1
    assert float(probs[2]) == 0.0 and float(probs.sum()) == pytest.approx(1.0)
    if weighting == "proportional":
        progress = schedule.progress()
        assert probs.tolist() == pytest.approx((progress / progress.sum()).tolist())
    assert LearningProgressSchedule(3, weighting=weighting).probabilities().tolist() == pytest.approx(
        [1 / 3] * 3
    )


def test_staged_sets_the_seed_plasticity_alpha_at_the_right_steps():
    class Backbone:
        def __init__(self):
            self.calls = []
            self.step = 0

        def set_plasticity(self, alpha):
            self.calls.append((self.step, alpha))

    backbone = Backbone()
    schedule = StagedSchedule.fractions(
        1000,
        (0.15, 0.40),
        [{"plasticity": a} for a in (0.1, 0.5, 0.99)],
        on_stage=lambda k: apply_knobs(backbone, k),
    )
    assert [schedule.knobs_at(s)["plasticity"] for s in (0, 149, 150, 399, 400, 999)] == [
        0.1,
        0.1,
        0.5,
        0.5,
        0.99,
        0.99,
    ]
    for step in range(1, 1001):
        backbone.step = step
        schedule.advance(1)
    assert backbone.calls == [(0, 0.1), (150, 0.5), (400, 0.99)]
    assert schedule.knobs() == {"plasticity": 0.99}


def test_staged_levels_follow_steps_or_episodes():
    by_steps = StagedSchedule(3, [{"until": 5, "level": 0}, {"until": 8, "level": 2}, {"level": 1}])
    seen = []
    for _ in range(10):
        seen.append(int(by_steps.level()))
        by_steps.advance(1)
    assert seen == [0] * 5 + [2] * 3 + [1] * 2
    curriculum = Curriculum(StagedSchedule(3, [{"until": 3}, {}], unit="episodes"), seed=0)
    both = torch.tensor([True, True])
    curriculum.record(torch.tensor([0, 0]), both, both)
    assert int(curriculum.schedule.level()) == 0
    curriculum.record(torch.tensor([0, 0]), both, both)
    assert int(curriculum.schedule.level()) == 1 and curriculum.draw(2).tolist() == [1, 1]


def test_build_schedule_names_and_plain_kwargs():
    assert isinstance(build_schedule("none", 3, level=2), FixedSchedule)
    assert build_schedule("adaptive", 3, threshold=0.7).threshold == 0.7
    assert isinstance(build_schedule("mixture", 3, spread=2.0), MixtureSchedule)
    assert isinstance(build_schedule("learning_progress", 3), LearningProgressSchedule)
    staged = build_schedule(
        "staged", 3, total=100, bounds=[0.5], knobs=[{"plasticity": 0.1}, {"plasticity": 0.9}]
    )
    assert staged.knobs_at(60) == {"plasticity": 0.9}
    assert build_schedule("staged", 3, stages=[{"until": 10}, {"level": 2}]).level_at(10) == 2


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: AdaptiveSchedule(3, threshold=1.5), "threshold must be a number in \\[0, 1\\]"),
        (lambda: AdaptiveSchedule(3, floor=-0.1), "floor must be a number in \\[0, 1\\]"),
        (lambda: AdaptiveSchedule(3, threshold=0.5, floor=0.6), "floor .* must be below threshold"),
        (lambda: AdaptiveSchedule(3, replay=2), "replay must be a number in \\[0, 1\\]"),
        (lambda: AdaptiveSchedule(3, start_level=3), "Unknown level 3 .* \\[0, 2\\]"),
        (lambda: StagedSchedule(3, []), "non-empty list of stages"),
        (lambda: StagedSchedule(3, [{"until": 5, "level": 7}, {}]), "Unknown level 7"),
        (lambda: StagedSchedule(3, [{"until": 5}, {"until": 4}, {}]), "must increase"),
        (lambda: StagedSchedule(3, [{"until": 5}]), "leave out its 'until'"),
        (lambda: StagedSchedule(3, [{"until": 5, "alpha": 1}, {}]), "keys among"),
        (lambda: StagedSchedule.fractions(100, (0.4, 0.2)), "increase strictly"),
        (lambda: FixedSchedule(3, level=-1), "Unknown level -1"),
        (lambda: LearningProgressSchedule(3, ema=0.0), "ema must be in \\(0, 1\\]"),
        (
            lambda: LearningProgressSchedule(3, weighting="softmax"),
            "weighting must be 'proportional' or 'sigmoid'",
        ),
        (lambda: build_schedule("linear", 3), "Unknown curriculum schedule 'linear'; use one of"),
        (lambda: build_schedule("adaptive", 3, treshold=0.5), "Unknown argument\\(s\\) \\['treshold'\\]"),
        (lambda: Curriculum(AdaptiveSchedule(3), level_names=["a", "b"]), "num_levels=2"),
    ],
)
def test_bad_input_fails_with_a_clear_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_apply_knobs_names_the_missing_setter():
    with pytest.raises(ValueError, match="set_plasticity"):
        apply_knobs(object(), {"plasticity": 0.1})
