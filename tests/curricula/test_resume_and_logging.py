"""A resumed curriculum continues exactly like an uninterrupted one; TensorBoard output and log lines."""

import logging

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from curricula import AdaptiveSchedule, Curriculum, CurriculumVectorWrapper, build_schedule
from foundation.checkpoint import load_checkpoint, save_checkpoint
from tests.common.counter_env import CounterVectorEnv

SCHEDULES = [
    ("none", {"level": 1}),
    (
        "staged",
        {
            "stages": [
                {"until": 20, "knobs": {"plasticity": 0.1}},
                {"until": 60},
                {"knobs": {"plasticity": 0.9}},
            ]
        },
    ),
    ("staged", {"stages": [{"until": 30}, {}], "unit": "episodes"}),
    ("adaptive", {"threshold": 0.6, "min_episodes": 6, "floor": 0.2, "window": 8}),
    ("mixture", {"threshold": 0.6, "min_episodes": 6, "window": 8}),
    ("learning_progress", {"ema": 0.2}),
]


def play(curriculum: Curriculum, start: int, stop: int) -> list[list[int]]:
    """A synthetic, resumable stream: success gets likelier with time and rarer with the level.

    Each step the loop advances the clock once, eight episodes at freshly drawn levels are recorded.
    """
    history = []
    for t in range(start, stop):
        g = torch.Generator().manual_seed(t)
        levels = curriculum.draw(8)
        done = torch.rand(8, generator=g) < 0.5
        p = (t / 40 - levels.float()).clamp(0.05, 0.95)
        success = torch.rand(8, generator=g) < p
        curriculum.advance(1)
        curriculum.record(levels, success, done)
        history.append(levels.tolist())
    return history


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULES)
def test_resumed_schedule_matches_an_uninterrupted_one(tmp_path, name, kwargs):
    def make():
        return Curriculum(build_schedule(name, 3, **kwargs), seed=1)

    uninterrupted = make()
    expected = play(uninterrupted, 0, 80)
    first = make()
    resumed_history = play(first, 0, 40)
    save_checkpoint({"curriculum": first.state_dict()}, tmp_path / "ckpt.pt")  # read back with weights_only
    resumed = make()
    resumed.load_state_dict(load_checkpoint(tmp_path / "ckpt.pt")["curriculum"])
    resumed_history += play(resumed, 40, 80)
    assert resumed_history == expected
    assert resumed.summary() == uninterrupted.summary()
    if name in ("adaptive", "mixture"):
        assert int(uninterrupted.schedule.changes) > 0  # the stream made the frontier move


def test_resumed_staged_schedule_reapplies_the_stage_knobs():
    applied = []
    stages = [{"until": 10, "knobs": {"plasticity": 0.1}}, {"knobs": {"plasticity": 0.5}}]
    first = build_schedule("staged", 3, stages=stages)
    first.advance(12)
    resumed = build_schedule("staged", 3, stages=stages, on_stage=applied.append)
    resumed.load_state_dict(first.state_dict())
    assert applied == [{"plasticity": 0.1}, {"plasticity": 0.5}] and resumed.steps == 12


def test_loading_state_of_another_schedule_is_refused():
    state = Curriculum(build_schedule("adaptive", 3), seed=0).state_dict()
    with pytest.raises(ValueError, match="build the same schedule first"):
        Curriculum(build_schedule("mixture", 3), seed=0).load_state_dict(state)


def test_vector_wrapper_resumed_at_a_reset_plays_the_same_levels():
    """The runners resume at a rollout boundary: from there on a resumed wrapper equals the original."""

    def run(env: CurriculumVectorWrapper, steps: int) -> list[list[int]]:
        env.reset(seed=0)
        played = []
        for _ in range(steps):
            env.step(torch.ones(4, dtype=torch.long))
            played.append(env.unwrapped.level_ids.tolist())
        return played

    env = CurriculumVectorWrapper(
        CounterVectorEnv(num_envs=4), AdaptiveSchedule(3, 0.75, 4, window=4), seed=0
    )
    run(env, 20)
    state = env.state_dict()
    expected = run(env, 20)
    fresh = CurriculumVectorWrapper(
        CounterVectorEnv(num_envs=4), AdaptiveSchedule(3, 0.75, 4, window=4), seed=5
    )
    fresh.load_state_dict(state)
    assert run(fresh, 20) == expected
    assert fresh.summary() == env.summary()


def test_log_writes_tensorboard_scalars_histogram_and_a_level_change_line(tmp_path, caplog):
    schedule = AdaptiveSchedule(3, threshold=0.75, min_episodes=4, replay=0.0, window=4)
    env = CurriculumVectorWrapper(CounterVectorEnv(num_envs=4), schedule, seed=0)
    env.reset(seed=0)
    writer = SummaryWriter(tmp_path)
    with caplog.at_level(logging.INFO, logger="curricula"):
        for step in range(1, 31):
            env.step(torch.ones(4, dtype=torch.long))
            env.log(writer, step)
    writer.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"curriculum/level", "curriculum/mean_level", "curriculum/success_rate/L2"} <= scalars
    assert "curriculum/levels" in events.Tags()["histograms"]
    levels = [e.value for e in events.Scalars("curriculum/level")]
    assert len(levels) == 30 and levels == sorted(levels) and set(levels) == {0.0, 1.0, 2.0}
    lines = [r.getMessage() for r in caplog.records if r.name == "curricula"]
    up_at = levels.index(1.0) + 1
    assert lines == [
        f"curriculum level 0 (L2) -> 1 (L3) at step {up_at}: success 1.00 over the last 4 episodes of L2",
        f"curriculum level 1 (L3) -> 2 (L5) at step {levels.index(2.0) + 1}: "
        "success 1.00 over the last 4 episodes of L3",
    ]
