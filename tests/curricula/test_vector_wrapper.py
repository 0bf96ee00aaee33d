"""The vector wrapper on MindGym's native vector env (statistics on its device, no per-step host sync) and
on a Gymnasium SyncVectorEnv of single maze envs."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from curricula import AdaptiveSchedule, CurriculumVectorWrapper, StagedSchedule, build_schedule
from envs.maze.env import MazeEnv
from envs.maze.levels import MazeLevel
from envs.maze.vector import MazeVectorEnv
from tests.common.counter_env import CounterVectorEnv
from tests.curricula.host_sync import HostSyncError, forbid_host_sync

TINY_MAZES = [MazeLevel("2x2", 2, 2), MazeLevel("2x3", 2, 3), MazeLevel("3x3", 3, 3)]


def counter_on(device):
    return CounterVectorEnv(num_envs=64, device=device)


def maze_on(device):
    return MazeVectorEnv(
        num_envs=64, device=device, obs_mode="egocentric", levels=TINY_MAZES, pool_size=64, seed=0
    )


def run(env, action, steps):
    """Step with a constant action; return (level, success) of every episode that ended."""
    ended = []
    actions = torch.full((env.num_envs,), action, device=env.unwrapped.device)
    for _ in range(steps):
        _, _, term, trunc, info = env.step(actions)
        src = info.get("final_info", info)
        done = term | trunc
        ended += list(zip(src["level"][done].tolist(), src["success"][done].tolist()))
    return ended


@pytest.mark.parametrize("mode", ["next_step", "same_step"])
def test_adaptive_climbs_through_set_level_and_counts_every_episode(mode):
    base = CounterVectorEnv(num_envs=4, autoreset_mode=mode)
    schedule = AdaptiveSchedule(3, threshold=0.75, min_episodes=4, replay=0.0, window=4)
    env = CurriculumVectorWrapper(base, schedule, seed=0)
    env.reset(seed=0)
    ended = run(env, 1, 60)  # counting up always succeeds
    assert int(schedule.level()) == 2  # climbed both levels and stopped at the last
    assert {level for level, _ in ended} == {0, 1, 2} and all(ok for _, ok in ended)
    assert sum(env.summary()["episodes"]) == len(ended)
    assert base.level_ids.tolist() == [2, 2, 2, 2]  # every sub-env now plays the frontier
    assert torch.equal(base.next_level_ids, env.levels)  # the wrapper's choice reached the env's set_level


def test_failures_keep_the_level_and_the_floor_steps_back():
    schedule = AdaptiveSchedule(
        3, threshold=0.8, min_episodes=4, floor=0.25, start_level=1, replay=0.0, window=4
    )
    env = CurriculumVectorWrapper(CounterVectorEnv(num_envs=2), schedule, seed=0)
    env.reset(seed=0)
    ended = run(env, 0, 40)  # never counting: every episode truncates unsolved
    assert ended and not any(ok for _, ok in ended)
    assert int(schedule.level()) == 0 and int(schedule.changes) == 1


def step_schedule(make, schedule, device, steps=50):
    """Run ``steps`` steps (oracle moves on the maze, counting up on the counter) under ``schedule``."""
    kwargs = {"stages": [{"until": 20}, {}], "unit": "episodes"} if schedule == "staged" else {}
    env = CurriculumVectorWrapper(make(device), build_schedule(schedule, 3, **kwargs), seed=0)
    _, info = env.reset(seed=0)
    ones = torch.ones(env.num_envs, dtype=torch.long, device=device)
    oracle = "optimal_actions" in info
    env.step(ones)  # warm-up
    return env, lambda info: info["optimal_actions"].long().argmax(1) if oracle else ones, info


@pytest.mark.parametrize("make", [counter_on, maze_on])
@pytest.mark.parametrize("schedule", ["adaptive", "mixture", "learning_progress", "staged"])
def test_statistics_stay_on_the_env_device_without_host_sync_in_step(make, schedule):
    env, policy, info = step_schedule(make, schedule, "cpu")
    with forbid_host_sync():
        for _ in range(40):
            _, _, _, _, info = env.step(policy(info))
    stats = env.curriculum.stats
    schedule_state = [getattr(env.schedule, name) for name in env.schedule._tensor_state]
    for tensor in (stats.results, stats.count, env.levels, *schedule_state):
        assert tensor.device == env.unwrapped.device
    assert sum(env.summary()["episodes"]) > 0


def test_the_host_sync_guard_catches_a_host_read():
    with forbid_host_sync(), pytest.raises(HostSyncError, match="item"):
        torch.ones(2).sum().item()
    with forbid_host_sync(), pytest.raises(HostSyncError, match="__bool__"):
        bool(torch.ones(1))
    assert torch.ones(1).item() == 1.0  # restored afterwards


@pytest.mark.gpu
@pytest.mark.parametrize("make", [counter_on, maze_on])
@pytest.mark.parametrize("schedule", ["adaptive", "mixture", "learning_progress", "staged"])
def test_gpu_step_has_no_host_sync(make, schedule):
    env, policy, info = step_schedule(make, schedule, "cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(50):
            _, _, _, _, info = env.step(policy(info))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert env.curriculum.stats.count.device.type == "cuda" and env.levels.device.type == "cuda"
    assert sum(env.summary()["episodes"]) > 0


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_sync_vector_env_of_single_envs_gets_levels_through_unwrapped_set_level(mode):
    fns = [lambda: MazeEnv(obs_mode="egocentric", levels=TINY_MAZES, pool_size=8) for _ in range(3)]
    vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
    schedule = StagedSchedule(3, [{"until": 6, "level": 0}, {"level": 2}])
    env = CurriculumVectorWrapper(vec, schedule, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    levels_seen = []
    for _ in range(120):
        env.curriculum.advance(1)  # the training loop's clock
        _, _, term, trunc, info = env.step(rng.integers(0, 4, size=3))
        done = term | trunc
        levels_seen += info.get("final_info", info)["level"][done].tolist()
    assert levels_seen[0] == 0 and levels_seen[-1] == 2 and set(levels_seen) == {0, 2}
    assert [sub.unwrapped.task.level_index for sub in vec.envs] == [2, 2, 2]
    assert sum(env.summary()["episodes"]) == len(levels_seen)


def test_async_vector_env_and_single_envs_are_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"wrap a single env with curricula\.CurriculumWrapper"):
        CurriculumVectorWrapper(MazeEnv(levels=TINY_MAZES), AdaptiveSchedule(3))

    class FakeAsync(gym.vector.VectorEnv):
        num_envs = 2

    with pytest.raises(TypeError, match="SyncVectorEnv"):
        CurriculumVectorWrapper(FakeAsync(), AdaptiveSchedule(3))


def test_schedule_over_the_wrong_ladder_is_refused():
    with pytest.raises(ValueError, match="num_levels=3"):
        CurriculumVectorWrapper(CounterVectorEnv(num_envs=2), AdaptiveSchedule(5))


def test_native_maze_vector_env_climbs_with_an_oracle_policy_without_host_sync():
    base = MazeVectorEnv(
        num_envs=8, device="cpu", obs_mode="egocentric", levels=TINY_MAZES, pool_size=16, seed=0
    )
    env = CurriculumVectorWrapper(base, AdaptiveSchedule(3, threshold=0.9, min_episodes=8, window=8), seed=0)
    _, info = env.reset(seed=0)
    with forbid_host_sync():
        for _ in range(60):
            _, _, _, _, info = env.step(info["optimal_actions"].long().argmax(1))
    summary = env.summary()
    assert summary["level"] == 2 and summary["success_rate"][:2] == [1.0, 1.0]
    assert summary["episodes"][2] > 0


def test_native_env_with_numpy_output_feeds_the_curriculum_like_tensor_output():
    summaries = []
    for numpy_output in (False, True):
        env = CurriculumVectorWrapper(
            CounterVectorEnv(num_envs=3, numpy=numpy_output), AdaptiveSchedule(3), seed=0
        )
        env.reset(seed=0)
        for _ in range(9):
            _, _, terminated, _, _ = env.step(np.ones(3, dtype=np.int64))
        assert isinstance(terminated, np.ndarray) == numpy_output
        summaries.append(env.summary())
    assert summaries[0] == summaries[1] and summaries[1]["episodes"][0] > 0
