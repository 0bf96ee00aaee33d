"""MazeVectorEnv's staggered pool refresh (``pool_banks=2``, ``refresh_pool``) and its saved state."""

from __future__ import annotations

import pytest
import torch
from gymnasium.vector import AutoresetMode

from envs.maze.vector import MazeVectorEnv

LEVELS = [{"name": "3x3", "height": 3, "width": 3}, {"name": "4x4", "height": 4, "width": 4}]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def make_env(
    seed: int = 3, banks: int = 2, num_envs: int = 32, device: str = "cpu", compile: bool = False
) -> MazeVectorEnv:
    env = MazeVectorEnv(
        num_envs,
        levels=LEVELS,
        device=device,
        obs_mode="grid",
        autoreset_mode=AutoresetMode.SAME_STEP,
        seed=seed,
        pool_size=16,
        pool_banks=banks,
        compile=compile,
    )
    env.set_level(torch.arange(num_envs, device=device) % 2)  # both levels at once
    env.reset(seed=seed)
    return env


def legal_random_actions(env: MazeVectorEnv, generator: torch.Generator) -> torch.Tensor:
    """A uniformly drawn legal move per sub-env (episodes then last a few dozen steps)."""
    weights = env.action_masks().float().cpu()
    return torch.multinomial(weights, 1, generator=generator).squeeze(1).to(env.device)


def bank_of(env: MazeVectorEnv) -> torch.Tensor:
    return env._maze // (env.pool.num_levels * env.pool.size)


@pytest.mark.parametrize("device", DEVICES)
def test_a_refresh_restarts_no_running_episode_and_every_next_episode_is_on_the_new_pool(device):
    env, generator = make_env(device=device), torch.Generator().manual_seed(0)
    for _ in range(3):  # sub-envs mid-episode (a few may have finished one and started the next)
        env.step(legal_random_actions(env, generator))
    before = env.current_observation().clone()
    pos, t, maze, masks = env._pos.clone(), env._t.clone(), env._maze.clone(), env.action_masks().clone()
    old_passages = env.pool.passages.clone()
    assert bool((bank_of(env) == 0).all())

    obs, restarted = env.refresh_pool(seed=11)

    assert not bool(restarted.any())  # no episode was cut
    assert torch.equal(obs, before) and torch.equal(env._pos, pos) and torch.equal(env._t, t)
    assert torch.equal(env._maze, maze) and torch.equal(env.action_masks(), masks)  # same mazes under them
    size = env.pool.num_levels * env.pool.size
    assert torch.equal(env.pool.passages[:size], old_passages[:size])  # the running bank is untouched
    assert not torch.equal(env.pool.passages[size:], old_passages[size:])  # the other bank holds new mazes

    pending = torch.ones(env.num_envs, dtype=torch.bool, device=env.device)
    for _ in range(200):
        on_old_bank = bank_of(env) == 0
        _, _, terminated, truncated, _ = env.step(legal_random_actions(env, generator))
        done = terminated | truncated
        assert bool((bank_of(env)[done] == 1).all())  # a finished episode's successor is on the new pool
        assert bool((bank_of(env)[~done] == torch.where(on_old_bank, 0, 1)[~done]).all())  # no switch mid-way
        pending &= ~done
        if not pending.any():
            break
    assert not bool(pending.any()), "some sub-env never finished an episode in 200 steps"


def test_an_episode_older_than_two_refreshes_is_restarted_on_the_newest_pool():
    env = make_env()
    env.step(torch.zeros(env.num_envs, dtype=torch.long))
    env.refresh_pool(seed=11)  # everyone still on bank 0
    obs, restarted = env.refresh_pool(seed=12)  # bank 0 is refilled under them
    assert bool(restarted.all()) and bool((bank_of(env) == 0).all()) and bool((env._t == 0).all())
    assert torch.equal(obs, env.current_observation())


def test_the_new_pool_follows_from_the_seed_alone():
    one, two = make_env(seed=3), make_env(seed=4)
    one.refresh_pool(seed=21)
    two.refresh_pool(seed=21)
    size = one.pool.num_levels * one.pool.size
    assert torch.equal(one.pool.passages[size:], two.pool.passages[size:])
    assert not torch.equal(one.pool.passages[:size], two.pool.passages[:size])


@pytest.mark.parametrize("device", DEVICES)
def test_a_saved_state_continues_exactly_mid_episode(device):
    env, generator = make_env(device=device), torch.Generator().manual_seed(1)
    for step in range(30):
        if step == 10:
            env.refresh_pool(seed=31)
        env.step(legal_random_actions(env, generator))
    state = env.state_dict()
    copy = make_env(seed=99, device=device)  # other mazes and episodes until the state is loaded
    copy.load_state_dict(state)
    assert torch.equal(copy.current_observation(), env.current_observation())
    for step in range(40):
        if step == 15:
            assert torch.equal(env.refresh_pool(seed=32)[1], copy.refresh_pool(seed=32)[1])
        actions = legal_random_actions(env, generator)
        for mine, theirs in zip(env.step(actions)[:4], copy.step(actions)[:4], strict=True):
            assert torch.equal(mine, theirs)


@pytest.mark.parametrize("compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_stepping_after_a_load_leaves_the_loaded_state_as_it_was(compile):
    """The env copies a loaded state: steps (some update tensors in place) never change the caller's dict,
    so one saved state can be loaded again, e.g. to replay from it."""
    env, generator = make_env(), torch.Generator().manual_seed(1)
    state = env.state_dict()
    saved = {name: value.clone() for name, value in state.items() if torch.is_tensor(value)}
    copy = make_env(seed=99, compile=compile)
    copy.load_state_dict(state)
    for _ in range(20):
        copy.step(legal_random_actions(copy, generator))
    for name, value in saved.items():
        assert torch.equal(state[name], value), name


def test_refresh_needs_two_banks():
    with pytest.raises(ValueError, match="pool_banks=2"):
        make_env(banks=1).refresh_pool(seed=5)


def test_a_state_of_another_pool_or_env_count_is_refused_naming_the_settings():
    state = make_env().state_dict()
    other_pool = MazeVectorEnv(
        32, levels=LEVELS, device="cpu", obs_mode="grid", seed=3, pool_size=8, pool_banks=2
    )
    with pytest.raises(ValueError, match=r"pools of 16 mazes a level.*env\.pool_size"):
        other_pool.load_state_dict(state)
    with pytest.raises(ValueError, match="32 sub-envs; this env has 2 and 16"):
        make_env(num_envs=16).load_state_dict(state)
