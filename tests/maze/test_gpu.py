"""CUDA checks: the native vector env on a GPU equals the CPU env, never syncs with the host inside step,
and the torch.compile and CUDA-graph paths equal the eager one."""

import numpy as np
import pytest
import torch

from envs.maze import MazeLevel
from envs.maze.vector import MazeVectorEnv

from .helpers import layout_levels

pytestmark = pytest.mark.gpu
MODES = ["grid", "tokens", "egocentric", "walls"]


def _run(env: MazeVectorEnv, actions: torch.Tensor) -> list:
    """Reset, then step through ``actions``; halfway, an eager reset() and a level change interleave
    with the steps. Outputs are copied to the host at once (a CUDA graph overwrites them)."""
    trace = [_to_cpu(env.reset(seed=0))]
    for k, a in enumerate(actions):
        if k == len(actions) // 2:
            env.set_level(torch.arange(env.num_envs, device=env.device).flip(0))
            trace.append(_to_cpu(env.reset()))
        trace.append(_to_cpu(env.step(a.to(env.device))))
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
@pytest.mark.parametrize("cuda_graph", [False, True])
@pytest.mark.parametrize("compile", [False, True])
def test_cuda_env_equals_cpu_env(obs_mode, compile, cuda_graph):
    levels = layout_levels(6)
    kwargs = dict(obs_mode=obs_mode, levels=levels, seed=0, pool_size=4)
    cpu = MazeVectorEnv(6, device="cpu", **kwargs)
    gpu = MazeVectorEnv(6, device="cuda", compile=compile, cuda_graph=cuda_graph, **kwargs)
    for env in (cpu, gpu):
        env.set_level(torch.arange(6, device=env.device))
    actions = torch.from_numpy(np.random.default_rng(0).integers(0, 4, size=(60, 6)))
    _assert_same(_run(gpu, actions), _run(cpu, actions))


def test_cuda_graph_replays_follow_a_pool_refill():
    """refill_pool() writes the pool in place, so the recorded step plays the new mazes."""
    kwargs = dict(obs_mode="grid", levels=[MazeLevel("5x5", 5, 5)], seed=3, pool_size=8)
    plain = MazeVectorEnv(16, device="cuda", **kwargs)
    graphed = MazeVectorEnv(16, device="cuda", cuda_graph=True, **kwargs)
    actions = torch.randint(4, (40, 16), device="cuda")
    traces = []
    for env in (plain, graphed):
        trace = [_to_cpu(env.reset(seed=3))]
        for k, a in enumerate(actions):
            if k == 20:
                trace.append(_to_cpu(env.refill_pool()))
            trace.append(_to_cpu(env.step(a)))
        traces.append(trace)
    _assert_same(*traces)
    assert not torch.equal(traces[1][0][0], traces[1][21][0])  # the refill brought new mazes


@pytest.mark.parametrize("obs_mode", MODES)
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_step_never_syncs_with_the_host(obs_mode, cuda_graph):
    env = MazeVectorEnv(
        4096,
        device="cuda",
        obs_mode=obs_mode,
        levels=layout_levels(3),
        seed=1,
        pool_size=8,
        cuda_graph=cuda_graph,
    )
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
