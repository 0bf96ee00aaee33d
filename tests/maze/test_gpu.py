"""CUDA checks: the native vector env on a GPU equals the CPU env, never syncs with the host inside step,
and the torch.compile path equals the eager one."""

import numpy as np
import pytest
import torch

from envs.maze.vector import MazeVectorEnv

from .helpers import layout_levels

pytestmark = pytest.mark.gpu
MODES = ["grid", "tokens", "egocentric"]


def _run(env: MazeVectorEnv, actions: torch.Tensor) -> list:
    obs, info = env.reset(seed=0)
    trace = [(obs, info)]
    for a in actions:
        trace.append(env.step(a.to(env.device)))
    return trace


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_to_cpu(v) for v in value]
    return value


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)


@pytest.mark.parametrize("obs_mode", MODES)
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_env_equals_cpu_env(obs_mode, compile):
    levels = layout_levels(6)
    kwargs = dict(obs_mode=obs_mode, levels=levels, seed=0, pool_size=4)
    cpu = MazeVectorEnv(6, device="cpu", **kwargs)
    gpu = MazeVectorEnv(6, device="cuda", compile=compile, **kwargs)
    for env in (cpu, gpu):
        env.set_level(torch.arange(6, device=env.device))
    actions = torch.from_numpy(np.random.default_rng(0).integers(0, 4, size=(60, 6)))
    _assert_same(_to_cpu(_run(gpu, actions)), _run(cpu, actions))


@pytest.mark.parametrize("obs_mode", MODES)
def test_step_never_syncs_with_the_host(obs_mode):
    env = MazeVectorEnv(4096, device="cuda", obs_mode=obs_mode, levels=layout_levels(3), seed=1, pool_size=8)
    env.reset(seed=1)
    actions = torch.randint(4, (20, 4096), device="cuda")
    env.step(actions[0])
    torch.cuda.set_sync_debug_mode("error")
    try:
        for a in actions[1:]:
            env.step(a)
            env.action_masks()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_make_vec_on_cuda_with_generated_mazes():
    import gymnasium as gym

    import envs  # noqa: F401

    vec = gym.make_vec(
        "mindgym/Maze-v0",
        num_envs=1024,
        vectorization_mode="vector_entry_point",
        device="cuda",
        obs_mode="grid",
    )
    obs, info = vec.reset(seed=0)
    assert obs.device.type == "cuda" and obs.shape == (1024, 3, 61, 61)
    for _ in range(5):
        obs, _, _, _, info = vec.step(torch.randint(4, (1024,), device="cuda"))
    assert info["success"].device.type == "cuda"
