"""TorchRL over MindGym's vector envs on CUDA, through DeviceGymWrapper (envs/common/torchrl.py).

TorchRL 0.14.1's stock GymWrapper crashed on a CUDA env in DISABLED mode (``.numpy()`` on the CUDA reset
mask, measured on an H200). The ``gpu`` tests run the spec check, rollouts and a few PPO batches on CUDA.
The other tests run the same paths on the CPU with NumPy conversion refused for any tensor that was not
first copied to the host (``.cpu()``, ``.to("cpu")``), as CUDA refuses it: they reproduce the H200 crash
with the stock wrapper and keep the GPU path covered where there is no GPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("torchrl")

import torch
from torchrl.envs import GymWrapper
from torchrl.envs.utils import check_env_specs

from envs.common.torchrl import make_vec, wrap
from envs.maze import MazeLevel
from tests.integrations.contract import OBS_MODES
from tests.integrations.torchrl_ppo import maze_ppo

CASES = [(env_id, mode) for env_id, modes in OBS_MODES.items() for mode in modes]
HOST_COPY_CASES = [("mindgym/Copy-v0", "stream"), ("mindgym/Maze-v0", "tokens")]  # Discrete and Dict
SMALL_MAZES = [MazeLevel("5x5", 5, 5), MazeLevel("8x8", 8, 8, generator="prim")]


def _kwargs(env_id: str) -> dict:
    return {"levels": SMALL_MAZES} if env_id == "mindgym/Maze-v0" else {}


@contextlib.contextmanager
def numpy_only_after_host_copy() -> Iterator[None]:
    """Within the block, ``Tensor.numpy()`` and ``np.asarray(tensor)`` raise unless the tensor came from
    ``.cpu()`` or ``.to("cpu")``: on the CPU, what CUDA tensors allow. The copies are real copies, as from
    a GPU."""
    original = {name: getattr(torch.Tensor, name) for name in ("numpy", "__array__", "cpu", "to")}

    def host_copy(out: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        out = out.clone() if out is source else out
        out._host_copy = True
        return out

    def cpu(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return host_copy(original["cpu"](self, *args, **kwargs), self)

    def to(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = original["to"](self, *args, **kwargs)
        targets = [*args, kwargs.get("device")]
        if any(isinstance(t, str | torch.device) and torch.device(t).type == "cpu" for t in targets):
            return host_copy(out, self)
        return out

    def refuse_device_tensor(name: str) -> Any:
        def convert(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if not getattr(self, "_host_copy", False):
                raise TypeError(f"can't convert a device tensor to numpy ({name}); copy it to the host first")
            return original[name](self, *args, **kwargs)

        return convert

    patched = {"numpy": refuse_device_tensor("numpy"), "__array__": refuse_device_tensor("__array__")}
    patched.update(cpu=cpu, to=to)
    try:
        for name, method in patched.items():
            setattr(torch.Tensor, name, method)
        yield
    finally:
        for name, method in original.items():
            setattr(torch.Tensor, name, method)


def test_the_stock_wrapper_fails_as_on_cuda():
    """The simulation reproduces the H200 crash: GymWrapper turns the reset mask into NumPy."""
    vec = make_vec("mindgym/Copy-v0", 4, "disabled", obs_mode="stream", seed=0)
    with numpy_only_after_host_copy(), pytest.raises(TypeError, match="can't convert a device tensor"):
        GymWrapper(vec, categorical_action_encoding=True).rollout(64, break_when_any_done=False)


@pytest.mark.parametrize("encoding", ["one_hot", "categorical"])
@pytest.mark.parametrize("autoreset_mode", ["same_step", "disabled"])
@pytest.mark.parametrize(("env_id", "obs_mode"), HOST_COPY_CASES)
def test_device_wrapper_needs_no_host_copy(env_id, obs_mode, autoreset_mode, encoding):
    vec = make_vec(env_id, 4, autoreset_mode, obs_mode=obs_mode, seed=0, **_kwargs(env_id))
    with numpy_only_after_host_copy():
        env = wrap(vec, categorical_action_encoding=encoding == "categorical")
        check_env_specs(env, seed=0)
        assert env.rollout(64, break_when_any_done=False).batch_size == (4, 64)


def test_ppo_needs_no_host_copy():
    """maze_ppo's whole loop (Collector, GAE, ClipPPOLoss, greedy evaluation) without a NumPy conversion."""
    with numpy_only_after_host_copy():
        result = maze_ppo(batches=2, num_envs=16, steps=16)
    assert result["frames"] == 2 * 16 * 16


@pytest.mark.gpu
@pytest.mark.parametrize("encoding", ["one_hot", "categorical"])
@pytest.mark.parametrize("autoreset_mode", ["same_step", "disabled"])
@pytest.mark.parametrize(("env_id", "obs_mode"), CASES)
def test_check_env_specs_on_cuda(env_id, obs_mode, autoreset_mode, encoding):
    """Every id and observation mode passes TorchRL's spec check on CUDA, and its data stays there."""
    vec = make_vec(env_id, 4, autoreset_mode, obs_mode=obs_mode, seed=0, device="cuda", **_kwargs(env_id))
    env = wrap(vec, categorical_action_encoding=encoding == "categorical")
    check_env_specs(env, seed=0)
    rollout = env.rollout(64, break_when_any_done=False)  # through resets
    assert rollout.batch_size == (4, 64)
    assert {value.device.type for value in rollout.values(True, True)} == {"cuda"}


@pytest.mark.gpu
def test_partial_resets_reach_a_cuda_env_as_cuda_masks():
    """TorchRL's partial resets arrive as CUDA masks, and only the finished sub-envs restart."""
    vec = make_vec("mindgym/Copy-v0", 8, "disabled", obs_mode="stream", seed=0, device="cuda")
    native = vec.unwrapped
    native.set_level(torch.arange(8) % 4)  # episodes of different lengths end out of step
    masks = []
    reset = native.reset

    def spy(**kwargs: Any) -> Any:
        options = kwargs.get("options") or {}
        if "reset_mask" in options:
            masks.append(options["reset_mask"])
        return reset(**kwargs)

    native.reset = spy
    env = wrap(vec, categorical_action_encoding=True)
    rollout = env.rollout(300, break_when_any_done=False)
    assert masks and all(isinstance(m, torch.Tensor) and m.device.type == "cuda" for m in masks)
    assert any(0 < int(m.sum()) < 8 for m in masks), "no partial reset happened"
    done = rollout["next", "done"].squeeze(-1)
    assert bool(done.any())


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["numpy", "host tensor", "cuda tensor"])
def test_a_cuda_env_takes_a_reset_mask_from_anywhere(kind):
    """A CUDA env's reset_mask may be NumPy (gymnasium's form), a host tensor or a CUDA tensor."""
    vec = make_vec("mindgym/Copy-v0", 4, "disabled", obs_mode="stream", seed=0, device="cuda")
    native = vec.unwrapped
    vec.reset(seed=0)
    for _ in range(3):
        vec.step(torch.zeros(4, dtype=torch.long, device="cuda"))
    before = native.t.tolist()
    assert min(before) > 0
    mask = torch.tensor([True, False, True, False])
    mask = {"numpy": mask.numpy(), "host tensor": mask, "cuda tensor": mask.cuda()}[kind]
    vec.reset(options={"reset_mask": mask})
    assert native.t.tolist() == [0, before[1], 0, before[3]]


@pytest.mark.gpu
def test_the_stock_wrapper_on_the_host_over_a_cuda_env():
    """The other way round TorchRL's crash: GymWrapper(device="cpu") sends NumPy masks to the CUDA env
    (every batch then crosses to the host and back)."""
    vec = make_vec("mindgym/Copy-v0", 4, "disabled", obs_mode="stream", seed=0, device="cuda")
    env = GymWrapper(vec, categorical_action_encoding=True, device="cpu")
    check_env_specs(env, seed=0)
    assert env.rollout(64, break_when_any_done=False).batch_size == (4, 64)


@pytest.mark.gpu
def test_ppo_runs_on_cuda():
    """A few batches of maze_ppo on CUDA: Collector, GAE and ClipPPOLoss with env, policy and data there."""
    result = maze_ppo(batches=3, num_envs=256, device="cuda")
    assert result["frames"] == 3 * 256 * 32
    assert 0.0 <= result["greedy_success_after"] <= 1.0, result
