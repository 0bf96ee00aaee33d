"""Steps/s of one MindGym task through each framework docs/integrations.md covers.

    python -m tests.integrations.throughput                      # CPU, 64 envs, every installed framework
    python -m tests.integrations.throughput --device cuda --num-envs 1024

The task is 5x5 DFS mazes with ``grid`` observations (3x11x11 images), the same everywhere. Two numbers a
framework: ``env`` steps with random actions through the framework's env interface (what its collector
pays for the env), and ``PPO`` whole training steps (collection plus updates, each framework's own PPO
with a 2x64 MLP, 64-step rollouts, a few epochs) per second. Prints a Markdown table, a row as soon as it
is measured. A framework that is not installed gets one row saying so; one that fails gets one row naming
the error (its traceback on stderr) and the command goes on to the next, exiting with status 1 at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers mindgym/*)

MAZE: dict[str, Any] = {"obs_mode": "grid", "levels": [{"name": "5x5", "height": 5, "width": 5}]}
Rate = tuple[float, float, float]  # steps/s: median, lowest, highest


def rate(run: Callable[[], int], seconds: float) -> Rate:
    """Steps/s of ``run`` (returns the steps it took): median, lowest and highest over the calls of about
    ``seconds`` after one warm-up call (the machine may be shared: the spread says how much that mattered)."""
    run()
    rates, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(rates) < 3:
        begin = time.perf_counter()
        steps = run()
        rates.append(steps / (time.perf_counter() - begin))
    return float(np.median(rates)), min(rates), max(rates)


def native(
    num_envs: int, device: str, autoreset_mode: str = "next_step", **kwargs: Any
) -> gym.vector.VectorEnv:
    return gym.make_vec(
        "mindgym/Maze-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        device=device,
        autoreset_mode=autoreset_mode,
        seed=0,
        **MAZE,
        **kwargs,
    )


def spread(rates: list[float]) -> Rate:
    return float(np.median(rates)), min(rates), max(rates)


def plain(num_envs: int, device: str, seconds: float) -> Iterator[tuple[str, Rate]]:
    single = gym.make("mindgym/Maze-v0", **MAZE)
    single.reset(seed=0)

    def single_steps() -> int:
        for _ in range(256):
            _, _, terminated, truncated, _ = single.step(single.action_space.sample())
            if terminated or truncated:
                single.reset()
        return 256

    yield "plain loop, single MazeEnv", rate(single_steps, seconds)
    vec = native(num_envs, device)
    vec.reset(seed=0)
    generator = torch.Generator(device=device).manual_seed(0)

    def vector_steps() -> int:
        for _ in range(64):
            vec.step(torch.randint(0, 4, (num_envs,), device=device, generator=generator))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return 64 * num_envs

    yield "plain loop, native vector env", rate(vector_steps, seconds)


def sb3(num_envs: int, device: str, seconds: float) -> Iterator[tuple[str, Rate]]:
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    from envs.common.sb3 import SB3VecEnvAdapter

    venv = SB3VecEnvAdapter(native(num_envs, device).unwrapped)
    venv.reset()
    rng = np.random.default_rng(0)

    def env_steps() -> int:
        for _ in range(64):
            venv.step(rng.integers(0, 4, num_envs))
        return 64 * num_envs

    yield "SB3 adapter (env)", rate(env_steps, seconds)
    for name, algo in (("SB3 PPO", PPO), ("sb3-contrib MaskablePPO", MaskablePPO)):
        model = algo("MlpPolicy", venv, n_steps=64, batch_size=512, n_epochs=4, device=device, seed=0)
        total = 4 * 64 * num_envs
        yield name, rate(lambda model=model, total=total: model.learn(total) and total, seconds)


def torchrl(num_envs: int, device: str, seconds: float) -> Iterator[tuple[str, Rate]]:
    """The env through DeviceGymWrapper (TorchRL's GymWrapper passing tensors, so a CUDA env works) in
    DISABLED and in SAME_STEP mode, and maze_ppo's training loop: the rate of each batch after the first
    (warm-up), for about ``seconds`` and at least three batches. Minibatches of 512 frames (as on the CPU)
    up to 1,024 envs, num_envs / 2 above, so that 16,384 envs make 256 updates a batch, not 4,096."""
    from envs.common.torchrl import wrap
    from tests.integrations.torchrl_ppo import maze_ppo

    for mode in ("disabled", "same_step"):
        env = wrap(native(num_envs, device, mode))

        def env_steps(env: Any = env) -> int:
            env.rollout(64, break_when_any_done=False)
            return 64 * num_envs

        label = "DeviceGymWrapper" if mode == "disabled" else "DeviceGymWrapper + FinalObsReader"
        yield f"TorchRL {label}, {mode} (env)", rate(env_steps, seconds)
    minibatch = max(512, num_envs // 2)
    ppo = {"num_envs": num_envs, "device": device, "minibatch": minibatch, "evaluate": False}
    result = maze_ppo(batches=10_000, max_seconds=seconds, min_batches=4, **ppo)
    label = f"TorchRL PPO (Collector, GAE, ClipPPOLoss; minibatch {minibatch})"
    yield label, spread(result["batch_steps_per_second"][1:])


def rllib(num_envs: int, device: str, seconds: float) -> Iterator[tuple[str, Rate]]:
    import ray

    from tests.integrations.test_rllib import ppo_config

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    for native_env, label in (
        (False, "RLlib vectorises single envs (sync)"),
        (True, "RLlib on the native vector env"),
    ):
        config = ppo_config("mindgym/Maze-v0", MAZE, native_env, num_envs=num_envs)
        if device.startswith("cuda"):
            config = config.learners(num_gpus_per_learner=1)
        algo = config.build_algo()
        runner = algo.env_runner

        def env_steps(runner: Any = runner) -> int:
            return sum(
                len(episode) for episode in runner.sample(num_timesteps=64 * num_envs, random_actions=True)
            )

        yield f"{label} (env)", rate(env_steps, seconds)

        def train(algo: Any = algo) -> int:
            return algo.train()["env_runners"]["num_env_steps_sampled"]

        yield f"{label}, PPO", rate(train, seconds)
        algo.stop()
    ray.shutdown()


FRAMEWORKS: dict[str, Callable[[int, str, float], Iterator[tuple[str, Rate]]]] = {
    "plain": plain,
    "sb3": sb3,
    "torchrl": torchrl,
    "rllib": rllib,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="time per measurement")
    parser.add_argument("--only", nargs="*", default=list(FRAMEWORKS), choices=list(FRAMEWORKS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small MLPs: 1 is fastest)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setting = f"{args.device}, {args.num_envs} envs, {args.threads} torch thread(s)"
    print(f"| path | steps/s: median (lowest-highest), {setting} |")
    print("|---|---|")
    failed = False
    for name in args.only:
        try:
            for label, (median, low, high) in FRAMEWORKS[name](args.num_envs, args.device, args.seconds):
                print(f"| {label} | {median:,.0f} ({low:,.0f}-{high:,.0f}) |", flush=True)
        except ImportError as err:
            print(f"| {name} | not run: {err.name or err} not installed |", flush=True)
        except Exception as err:  # one framework's failure must not hide the others' rows
            traceback.print_exc()
            first_line = str(err).splitlines()[0] if str(err) else ""
            print(f"| {name} | failed: {type(err).__name__}: {first_line} (traceback on stderr) |")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
