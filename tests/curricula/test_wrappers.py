"""The single-env wrapper, the SB3 wrapper and callback, and the supervised sampler on real MindGym tasks."""

import csv
import logging

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

import envs  # noqa: F401  (registers mindgym/Maze-v0)
from curricula import AdaptiveSchedule, Curriculum, CurriculumSampler, CurriculumWrapper, StagedSchedule
from curricula.sb3 import CurriculumCallback, CurriculumVecEnv, find_curriculum
from envs.common.sb3 import SB3VecEnvAdapter
from envs.maze.levels import MazeLevel
from envs.maze.task import MazeTask
from tests.common.counter_env import CounterVectorEnv

TINY_MAZES = [MazeLevel("2x2", 2, 2), MazeLevel("2x3", 2, 3), MazeLevel("3x3", 3, 3)]


def make_maze(**kwargs):
    return gym.make("mindgym/Maze-v0", obs_mode="egocentric", levels=TINY_MAZES, pool_size=8, **kwargs)


def oracle(info) -> int:
    return int(np.argmax(info["optimal_actions"]))


def test_single_env_wrapper_sets_each_episode_level_before_reset_and_logs_the_moves(caplog):
    schedule = AdaptiveSchedule(3, threshold=0.8, min_episodes=3, replay=0.0, window=3)
    env = CurriculumWrapper(make_maze(), schedule, seed=0)
    played = []
    with caplog.at_level(logging.INFO, logger="curricula"):
        _, info = env.reset(seed=0)
        for _ in range(10):
            terminated = truncated = False
            while not (terminated or truncated):
                _, _, terminated, truncated, info = env.step(oracle(info))
            played.append(info["level"])
            _, info = env.reset()
    assert played == [0] * 3 + [1] * 3 + [2] * 4
    assert env.unwrapped.task.level_index == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "curricula"]
    assert len(lines) == 2 and lines[0].startswith("curriculum level 0 (2x2) -> 1 (2x3)")
    assert "success 1.00 over the last 3 episodes of 2x2" in lines[0]


def test_single_env_wrapper_refuses_an_env_without_a_task():
    with pytest.raises(TypeError, match=r"needs a MindGym env with \.task"):
        CurriculumWrapper(gym.make("CartPole-v1"), AdaptiveSchedule(3))


def test_sb3_wrapper_over_the_native_adapter_climbs_via_env_method():
    base = CounterVectorEnv(num_envs=4)
    venv = CurriculumVecEnv(
        SB3VecEnvAdapter(base), AdaptiveSchedule(3, min_episodes=4, replay=0.0, window=4), seed=0
    )
    venv.reset()
    for _ in range(60):
        venv.step(np.ones(4, dtype=np.int64))
    assert int(venv.schedule.level()) == 2
    assert base.level_ids.tolist() == [2, 2, 2, 2]
    assert venv.summary()["episodes"][2] > 0


def test_sb3_wrapper_over_dummy_vec_env_of_single_envs():
    dummy = DummyVecEnv([make_maze for _ in range(2)])
    venv = CurriculumVecEnv(dummy, StagedSchedule(3, [{"until": 10, "level": 0}, {"level": 2}]), seed=0)
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    levels = []
    for _ in range(150):
        venv.curriculum.advance(2)  # what CurriculumCallback does: the clock in SB3 timesteps
        _, _, dones, infos = venv.step(rng.integers(0, 4, size=2))
        levels += [infos[i]["level"] for i in np.flatnonzero(dones)]
    assert levels[0] == 0 and levels[-1] == 2
    assert [e.unwrapped.task.level_index for e in dummy.envs] == [2, 2]


def test_sb3_callback_records_curriculum_scalars(tmp_path):
    venv = CurriculumVecEnv(
        SB3VecEnvAdapter(CounterVectorEnv(num_envs=4)), AdaptiveSchedule(3, min_episodes=4)
    )
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(64, callback=CurriculumCallback(log_every=16))
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"curriculum/level", "curriculum/mean_level"} <= set(rows[0])
    assert any(row["curriculum/level"] != "" for row in rows)


def test_sb3_callback_is_the_clock_in_sb3_timesteps():
    """Only the callback advances the curriculum: a staged boundary at 32 timesteps fires at 32."""
    venv = CurriculumVecEnv(
        SB3VecEnvAdapter(CounterVectorEnv(num_envs=4)),
        StagedSchedule(3, [{"until": 32, "level": 0}, {"level": 2}]),
        seed=0,
    )
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=32, n_epochs=1, seed=0, device="cpu")
    for _ in range(200):  # stepping the env alone never moves the clock
        venv.step(np.ones(4, dtype=np.int64))
    assert venv.curriculum.steps == 0 and int(venv.schedule.level()) == 0
    model.learn(64, callback=CurriculumCallback(log_every=16))
    assert venv.curriculum.steps == model.num_timesteps == 64
    assert int(venv.schedule.level()) == 2


def test_sb3_callback_without_a_curriculum_names_the_fix():
    with pytest.raises(ValueError, match="CurriculumVecEnv"):
        find_curriculum(SB3VecEnvAdapter(CounterVectorEnv(num_envs=2)))


def test_sampler_splits_batches_by_the_schedule_and_pads_to_the_longest():
    task = MazeTask(TINY_MAZES)
    sampler = CurriculumSampler(task, AdaptiveSchedule(3, replay=0.5, start_level=2), seed=0)
    batch = sampler.sample_batch(200, generator=torch.Generator().manual_seed(0))
    share = torch.bincount(sampler.last_levels, minlength=3).float() / 200
    assert share.tolist() == pytest.approx([0.25, 0.25, 0.5], abs=0.1)
    assert batch.tokens.shape[0] == 200 and batch.tokens.shape == batch.loss_mask.shape
    # the same generator reproduces each level's part; shorter parts are right-padded with 0, masked out
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(sampler.last_levels, minlength=3).tolist()
    parts = [task.sample_batch(n, generator=generator, level=level) for level, n in enumerate(counts)]
    assert batch.tokens.shape[1] == max(p.tokens.shape[1] for p in parts) > parts[0].tokens.shape[1]
    for level, part in enumerate(parts):
        rows, width = sampler.last_levels == level, part.tokens.shape[1]
        assert torch.equal(batch.tokens[rows, :width], part.tokens)
        assert torch.equal(batch.loss_mask[rows, :width], part.loss_mask)
        assert not batch.loss_mask[rows, width:].any() and (batch.tokens[rows, width:] == 0).all()


def test_sampler_follows_a_staged_schedule_that_only_the_loop_advances():
    curriculum = Curriculum(StagedSchedule(3, [{"until": 2, "level": 0}, {"level": 2}]), seed=0)
    sampler = CurriculumSampler(MazeTask(TINY_MAZES), curriculum, seed=0)
    levels = []
    for _ in range(4):
        sampler.sample_batch(3)
        levels.append(sampler.last_levels.tolist())
        curriculum.advance(1)  # the training loop's clock, once per optimiser step
    assert levels == [[0, 0, 0], [0, 0, 0], [2, 2, 2], [2, 2, 2]]
    for _ in range(5):
        sampler.sample_batch(3)  # sampling alone never moves the clock
    assert curriculum.steps == 4
    with pytest.raises(ValueError, match="num_levels=3"):
        CurriculumSampler(MazeTask(TINY_MAZES), AdaptiveSchedule(10))


def _same(a, b) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip((a.tokens, a.targets, a.loss_mask), (b.tokens, b.targets, b.loss_mask))
    )


def test_prefetching_sampler_hands_out_each_draw_in_order_and_trimmed():
    task = MazeTask(TINY_MAZES)
    generator = torch.Generator().manual_seed(1)
    sampler = CurriculumSampler(task, StagedSchedule(3, [{"level": 2}]), seed=0, prefetch=4)
    batches = [sampler.sample_batch(8, generator=generator) for _ in range(6)]
    stream = torch.Generator().manual_seed(1)
    draws = [task.sample_batch(32, generator=stream, level=2) for _ in range(2)]  # 4 batches per draw
    for i, batch in enumerate(batches):  # each draw handed out in order, each batch trimmed to its rows
        whole, rows = draws[i // 4], slice(8 * (i % 4), 8 * (i % 4) + 8)
        width = batch.tokens.shape[1]
        assert torch.equal(batch.tokens, whole.tokens[rows, :width])
        assert torch.equal(batch.loss_mask, whole.loss_mask[rows, :width])
        assert not whole.loss_mask[rows, width:].any() and (whole.tokens[rows, width:] == 0).all()
        assert (batch.tokens[:, -1] != 0).any() or batch.loss_mask[:, -1].any()  # no all-padding column


def test_prefetching_sampler_hands_out_rows_of_the_draw_without_copying_it():
    # a batch is a view of its draw: a step copies neither the draw (a deep copy of a view copies its whole
    # storage) nor the batch, and moving it to the device it is on keeps the same memory
    task = MazeTask(TINY_MAZES)
    sampler = CurriculumSampler(task, StagedSchedule(3, [{"level": 2}]), seed=0, prefetch=4)
    generator = torch.Generator().manual_seed(1)
    batches = [sampler.sample_batch(8, generator=generator).to("cpu") for _ in range(3)]
    draw = sampler.reservoirs[2].batch
    for batch in batches:
        for part, whole in zip(batch.parts(), draw.parts(), strict=True):
            assert part.untyped_storage().data_ptr() == whole.untyped_storage().data_ptr()
    assert sampler.last_levels.device.type == "cpu" and sampler.last_levels.tolist() == [2] * 8


def test_prefetching_sampler_resumes_mid_draw_exactly(tmp_path):
    from foundation import load_checkpoint, save_checkpoint

    task = MazeTask(TINY_MAZES)

    def make():
        schedule = AdaptiveSchedule(3, replay=0.5, start_level=2)
        return CurriculumSampler(task, schedule, seed=0, prefetch=3), torch.Generator().manual_seed(5)

    sampler, generator = make()
    for _ in range(4):
        sampler.sample_batch(8, generator=generator)
    save_checkpoint({"sampler": sampler.state_dict(), "gen": generator.get_state()}, tmp_path / "s.pt")
    expected = [sampler.sample_batch(8, generator=generator) for _ in range(5)]
    resumed, generator = make()
    state = load_checkpoint(tmp_path / "s.pt")
    resumed.load_state_dict(state["sampler"])
    generator.set_state(state["gen"])
    assert all(_same(resumed.sample_batch(8, generator=generator), batch) for batch in expected)
