"""MazeVectorEnv(task=...): the env plays the given MazeTask itself, and task-building arguments clash."""

import pytest
import torch

from envs.maze import MazeLevel, MazeTask
from envs.maze.vector import MazeVectorEnv
from tests.maze.helpers import SMALL


def test_the_env_shares_the_task_object_with_the_sampler():
    task = MazeTask(SMALL, level="5x5", horizons=2)
    env = MazeVectorEnv(4, task=task, device="cpu", pool_size=8, seed=0)
    assert env.task is task and env.get_level().tolist() == [1] * 4  # starts at the task's level
    task.set_level("3x6-open")  # a level the sampler's side moves is the env's task level too
    assert env.task.level.name == "3x6-open"
    assert env.task.sample_batch(2, generator=torch.Generator().manual_seed(0)).targets.shape[-1] == 2
    started = MazeVectorEnv(2, task=task, device="cpu", pool_size=8, level="4x4")
    assert started.get_level().tolist() == [0, 0] and task.level.name == "3x6-open"  # the env wrote no level


def test_a_level_outside_the_pools_leaves_the_shared_ladder_alone():
    task = MazeTask(SMALL)
    env = MazeVectorEnv(2, task=task, device="cpu", pool_size=8)
    with pytest.raises(ValueError, match="not in this env's ladder at construction"):
        env.set_level({"name": "7x7", "height": 7, "width": 7})
    assert task.ladder.names == [lv.name for lv in SMALL]
    task.set_level({"name": "3x3", "height": 3, "width": 3})  # the sampler adds a level later
    with pytest.raises(ValueError, match="joined the task's ladder after this env was made"):
        env.set_level("3x3")


@pytest.mark.parametrize(
    "extra,named",
    [({"levels": SMALL}, "levels="), ({"horizons": 2}, "horizons="), ({"maze": "#SG#"}, "maze=")],
)
def test_task_with_task_building_arguments_is_an_error_naming_them(extra, named):
    with pytest.raises(ValueError, match=f"task= together with {named}.*Build that task with them"):
        MazeVectorEnv(2, task=MazeTask(SMALL), device="cpu", **extra)


def test_wrong_task_type_and_positional_arguments_are_rejected():
    from envs.recall import RecallTask

    with pytest.raises(TypeError, match="needs task= to be a MazeTask, got RecallTask"):
        MazeVectorEnv(2, task=RecallTask("copy"), device="cpu")
    with pytest.raises(TypeError, match="positional"):
        MazeVectorEnv(2, "cpu")  # everything after num_envs is keyword-only


def test_a_level_the_shared_task_gains_later_does_not_break_the_pool():
    task = MazeTask([MazeLevel("3x3", 3, 3), MazeLevel("4x4", 4, 4)])
    env = MazeVectorEnv(4, task=task, device="cpu", obs_mode="tokens", seed=0)
    task.set_level({"name": "5x5", "height": 5, "width": 5})  # the supervised side grows the ladder
    assert task.num_levels == 3 and env.pool.num_levels == 2
    obs, _ = env.reset(seed=1)  # the env keeps playing its pooled levels
    assert obs["tokens"].shape[0] == 4
    env.refill_pool()
