"""Steps/s of one MindGym task through each framework docs/integrations.md covers.

    python -m tests.integrations.throughput                      # CPU, 64 envs, every installed framework
    python -m tests.integrations.throughput --device cuda --num-envs 1024

The task is 5x5 DFS mazes with ``grid`` observations (3x11x11 images), the same everywhere. Two numbers a
framework: ``env`` steps with random actions through the framework's env interface (what its collector
pays for the env), and ``PPO`` whole training steps (collection plus updates, each framework's own PPO
with a 2x64 MLP, 64-step rollouts, a few epochs) per second. Frameworks that are not installed are left
out. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers mindgym/*)

MAZE: dict[str, Any] = {"obs_mode": "grid", "levels": [{"name": "5x5", "height": 5, "width": 5}]}


def rate(run: Callable[[], int], seconds: float) -> tuple[float, float, float]:
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


def plain(num_envs: int, device: str, seconds: float) -> dict[str, float]:
    single = gym.make("mindgym/Maze-v0", **MAZE)
    single.reset(seed=0)

    def single_steps() -> int:
        for _ in range(256):
            _, _, terminated, truncated, _ = single.step(single.action_space.sample())
            if terminated or truncated:
                single.reset()
        return 256

    vec = native(num_envs, device)
    vec.reset(seed=0)
    generator = torch.Generator(device=device).manual_seed(0)

    def vector_steps() -> int:
        for _ in range(64):
            vec.step(torch.randint(0, 4, (num_envs,), device=device, generator=generator))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return 64 * num_envs

    return {
        "plain loop, single MazeEnv": rate(single_steps, seconds),
        "plain loop, native vector env": rate(vector_steps, seconds),
    }


def sb3(num_envs: int, device: str, seconds: float) -> dict[str, float]:
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

    out = {"SB3 adapter (env)": rate(env_steps, seconds)}
    for name, algo in (("SB3 PPO", PPO), ("sb3-contrib MaskablePPO", MaskablePPO)):
        model = algo("MlpPolicy", venv, n_steps=64, batch_size=512, n_epochs=4, device=device, seed=0)
        total = 4 * 64 * num_envs
        out[name] = rate(lambda model=model, total=total: model.learn(total) and total, seconds)
    return out


def torchrl(num_envs: int, device: str, seconds: float) -> dict[str, float]:
    from torchrl.envs import GymWrapper

    from tests.integrations.test_torchrl import maze_ppo
    from tests.integrations.torchrl_adapter import same_step_env

    out = {}
    for mode in ("disabled", "same_step"):
        vec = native(num_envs, device, mode)
        env = GymWrapper(vec, device=device) if mode == "disabled" else same_step_env(vec, device=device)

        def env_steps(env: Any = env) -> int:
            env.rollout(64, break_when_any_done=False)
            return 64 * num_envs

        out[f"TorchRL GymWrapper, {mode.upper()} (env)"] = rate(env_steps, seconds)
    # the training loop's own rate (maze_ppo times it apart from building and evaluating), three runs
    rates = [maze_ppo(batches=20, num_envs=num_envs, device=device)["steps_per_second"] for _ in range(3)]
    out["TorchRL PPO (Collector, GAE, ClipPPOLoss)"] = (float(np.median(rates)), min(rates), max(rates))
    return out


def rllib(num_envs: int, device: str, seconds: float) -> dict[str, float]:
    import ray

    from tests.integrations.test_rllib import ppo_config

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    out = {}
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

        out[f"{label} (env)"] = rate(env_steps, seconds)

        def train(algo: Any = algo) -> int:
            return algo.train()["env_runners"]["num_env_steps_sampled"]

        out[f"{label}, PPO"] = rate(train, seconds)
        algo.stop()
    ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="time per measurement")
    parser.add_argument("--only", nargs="*", default=["plain", "sb3", "torchrl", "rllib"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small MLPs: 1 is fastest)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    setting = f"{args.device}, {args.num_envs} envs, {args.threads} torch thread(s)"
    print(f"| path | steps/s: median (lowest-highest), {setting} |")
    print("|---|---|")
    for name in args.only:
        try:
            results = globals()[name](args.num_envs, args.device, args.seconds)
        except ImportError as err:
            print(f"| {name} | not installed ({err.name}) |")
            continue
        for label, value in results.items():
            median, low, high = value if isinstance(value, tuple) else (value, value, value)
            print(f"| {label} | {median:,.0f} ({low:,.0f}-{high:,.0f}) |", flush=True)


if __name__ == "__main__":
    main()
