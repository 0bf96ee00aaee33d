import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import envs  # noqa: F401  (registers mindgym/Maze-v0)
from envs.maze.env import MazeEnv
from envs.maze.vector import MazeVectorEnv

from .helpers import SMALL, layout_levels

INFO_KEYS = ("success", "level", "optimal_length", "solved_optimally", "optimal_actions", "steps")


@pytest.mark.parametrize(
    "obs_mode, extra",
    [("grid", {}), ("grid", {"grid_scale": 2}), ("tokens", {}), ("egocentric", {"view_size": 7})],
)
def test_vector_transitions_equal_single_env_transitions(obs_mode, extra):
    levels = layout_levels(5)
    vec = MazeVectorEnv(
        5, device="cpu", obs_mode=obs_mode, levels=levels, numpy=True, seed=0, pool_size=2, **extra
    )
    vec.set_level(torch.arange(5))
    singles = [MazeEnv(obs_mode=obs_mode, levels=levels, level=i, **extra) for i in range(5)]
    obs, info = vec.reset(seed=0)
    single = [env.reset(seed=i) for i, env in enumerate(singles)]
    _compare(obs, info, single)
    rng = np.random.default_rng(0)
    done = np.zeros(5, dtype=bool)
    finished = 0
    for _ in range(80):
        actions = rng.integers(0, 4, size=5)
        obs, reward, terminated, truncated, info = vec.step(actions)
        results = []
        for i, env in enumerate(singles):
            if done[i]:
                results.append(env.reset())
                assert reward[i] == 0 and not terminated[i] and not truncated[i]
            else:
                o, r, te, tr, inf = env.step(int(actions[i]))
                assert reward[i] == pytest.approx(r) and terminated[i] == te and truncated[i] == tr
                results.append((o, inf))
        _compare(obs, info, results)
        done = terminated | truncated
        finished += int(done.sum())
    assert finished > 0, "the test must cover automatic resets"


def _compare(obs, info, single):
    for i, (o, inf) in enumerate(single):
        if isinstance(o, dict):
            for key in o:
                assert np.array_equal(obs[key][i], o[key]), key
        else:
            assert np.array_equal(obs[i], o)
        for key in INFO_KEYS:
            assert np.array_equal(info[key][i], inf[key]), key


def test_make_vec_entry_point_and_metadata():
    vec = gym.make_vec(
        "mindgym/Maze-v0", num_envs=8, vectorization_mode="vector_entry_point", device="cpu", levels=SMALL
    )
    assert isinstance(vec.unwrapped, MazeVectorEnv)
    assert vec.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, info = vec.reset(seed=1)
    assert obs["tokens"].shape == (8, vec.single_observation_space["tokens"].shape[0])
    assert info["success"].dtype == torch.bool and info["level"].device.type == "cpu"
    assert vec.single_observation_space.contains({k: v[0].numpy() for k, v in obs.items()})


def test_same_step_autoreset_reports_final_observations():
    vec = MazeVectorEnv(
        16, device="cpu", obs_mode="grid", levels=SMALL, pool_size=32, autoreset_mode="same_step", seed=2
    )
    vec.reset(seed=2)
    seen_done = False
    for _ in range(60):
        masks = vec.action_masks()
        actions = torch.multinomial(masks.float(), 1, generator=torch.Generator().manual_seed(3)).squeeze(1)
        _, _, terminated, truncated, info = vec.step(actions)
        done = terminated | truncated
        if done.any():
            seen_done = True
            assert torch.equal(info["_final_obs"], done)
            assert info["final_info"]["success"][terminated].all()
            assert (info["steps"][done] == 0).all()
    assert seen_done


def test_per_sub_env_levels_pad_to_the_largest_size():
    vec = MazeVectorEnv(3, device="cpu", obs_mode="grid", levels=SMALL, pool_size=32, seed=4)
    vec.set_level(torch.tensor([0, 1, 2]))
    obs, info = vec.reset(seed=4)
    assert info["level"].tolist() == [0, 1, 2]
    assert obs.shape == (3, 3, 11, 13)
    assert (obs[0, 0, 9:, :] == 255).all() and (obs[0, 0, :, 9:] == 255).all()  # 4x4 maze, walls around
    vec.set_level("5x5", env_ids=[2])
    vec.reset(options={"reset_mask": torch.tensor([False, False, True])})
    assert vec.get_level().tolist() == [0, 1, 1]


def test_action_masks_block_walls():
    vec = MazeVectorEnv(32, device="cpu", obs_mode="egocentric", levels=SMALL, pool_size=32, seed=5)
    vec.reset(seed=5)
    masks = vec.action_masks()
    illegal = torch.argmin(masks.long(), dim=1)  # every maze cell has a wall somewhere (4x4/5x5 DFS)
    before = vec._pos.clone()
    _, reward, _, _, _ = vec.step(illegal)
    blocked = ~masks.gather(1, illegal[:, None]).squeeze(1)
    assert torch.equal(vec._pos[blocked], before[blocked])
    assert blocked.all() and torch.allclose(reward, torch.full_like(reward, -0.06))


@pytest.mark.parametrize(
    "actions, message",
    [
        (torch.zeros(3, dtype=torch.long), r"shape \(4,\)"),
        (torch.zeros(4), "integer"),
        (np.full(4, 7), r"\[0, 3\]"),
    ],
)
def test_bad_actions_raise_value_errors(actions, message):
    vec = MazeVectorEnv(4, device="cpu", levels=SMALL, pool_size=32, seed=6)
    vec.reset()
    with pytest.raises(ValueError, match=message):
        vec.step(actions)


def test_levels_outside_the_ladder_and_render_mode_are_rejected():
    vec = MazeVectorEnv(2, device="cpu", levels=SMALL, pool_size=32, seed=7)
    with pytest.raises(ValueError, match="not in this env's ladder"):
        vec.set_level({"name": "new", "height": 3, "width": 3})
    with pytest.raises(ValueError, match="does not render"):
        MazeVectorEnv(2, device="cpu", levels=SMALL, pool_size=32, render_mode="rgb_array")
    with pytest.raises(ValueError, match="cuda_graph needs device='cuda'"):
        MazeVectorEnv(2, device="cpu", levels=SMALL, pool_size=32, cuda_graph=True)


def test_seeding_is_deterministic():
    def run(seed):
        vec = MazeVectorEnv(8, device="cpu", obs_mode="tokens", levels=SMALL, pool_size=32, seed=seed)
        obs, _ = vec.reset(seed=seed)
        trace = [obs["tokens"]]
        for t in range(10):
            trace.append(vec.step(torch.full((8,), t % 4))[0]["tokens"])
        return torch.stack(trace)

    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_refill_pool_gives_new_mazes():
    vec = MazeVectorEnv(4, device="cpu", levels=SMALL, seed=8, pool_size=4)
    vec.reset(seed=8)
    before = vec.pool.passages.clone()
    obs, info = vec.refill_pool()
    assert not torch.equal(before, vec.pool.passages)
    assert (info["steps"] == 0).all() and obs["length"].shape == (4, 1)


def test_sb3_adapter_runs_maskable_ppo():
    from sb3_contrib import MaskablePPO

    from envs.common.sb3 import SB3VecEnvAdapter

    venv = SB3VecEnvAdapter(
        MazeVectorEnv(8, device="cpu", obs_mode="grid", levels=SMALL, pool_size=32, seed=9)
    )
    assert venv.action_masks().shape == (8, 4)
    model = MaskablePPO("MlpPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, seed=0)
    model.learn(128)
    assert model.num_timesteps >= 128


def test_scaled_grid_trains_with_sb3_cnn_policy():
    from stable_baselines3 import PPO

    from envs.common.sb3 import SB3VecEnvAdapter

    env = MazeVectorEnv(
        4, device="cpu", obs_mode="grid", levels=SMALL[:2], grid_scale=4, seed=10, pool_size=8
    )
    assert env.single_observation_space.shape == (3, 44, 44)
    model = PPO("CnnPolicy", SB3VecEnvAdapter(env), n_steps=8, batch_size=32, n_epochs=1, seed=0)
    model.learn(32)
    assert model.num_timesteps >= 32
