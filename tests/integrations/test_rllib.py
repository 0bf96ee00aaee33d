"""RLlib (new API stack) runs MindGym's envs: registered through ``ray.tune.registry.register_env``, PPO for a
few iterations on 5x5 mazes and on stream-mode copy, once vectorised by RLlib (gymnasium's SyncVectorEnv
over single envs) and once on MindGym's native vector env (``gym_env_vectorize_mode="vector_entry_point"``).

RLlib's env runner expects NEXT_STEP autoreset (an episode's first observation arrives on the step after
the one that ended it), the native vector envs' default, and NumPy outputs (``numpy=True``).

Slow, and skipped where ray[rllib] is not installed (``pip install -e ".[rllib]"``).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

pytest.importorskip("ray.rllib")

import gymnasium as gym
import ray
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.connectors.env_to_module import FlattenObservations
from ray.tune.registry import register_env

pytestmark = pytest.mark.slow

MAZE = {"obs_mode": "grid", "levels": [{"name": "5x5", "height": 5, "width": 5}]}
STREAM_COPY = {"obs_mode": "stream", "level": "len4-v8"}


def make_single(config: dict[str, Any]) -> gym.Env:
    """One MindGym env; RLlib's workers do not share the driver's Gymnasium registry, so import envs here."""
    import envs  # noqa: F401  (registers mindgym/*)

    config = dict(config)
    return gym.make(config.pop("id"), **config)


def make_native_vector(config: dict[str, Any]) -> gym.vector.VectorEnv:
    """MindGym's own vector env: RLlib adds ``num_envs`` to the env config under vector_entry_point."""
    import envs  # noqa: F401

    config = dict(config)
    return gym.make_vec(
        config.pop("id"),
        num_envs=config.pop("num_envs"),
        vectorization_mode="vector_entry_point",
        device="cpu",
        numpy=True,  # RLlib's connectors read NumPy arrays
        autoreset_mode="next_step",  # what RLlib's SingleAgentEnvRunner expects
        **config,
    )


register_env("mindgym", make_single)
register_env("mindgym-vector", make_native_vector)


def ppo_config(env_id: str, env_config: dict, native: bool, num_envs: int = 16) -> PPOConfig:
    return (
        PPOConfig()
        .environment("mindgym-vector" if native else "mindgym", env_config={"id": env_id, **env_config})
        .env_runners(
            num_env_runners=0,  # sample in this process: 2 cores, no remote workers
            num_envs_per_env_runner=num_envs,
            gym_env_vectorize_mode="vector_entry_point" if native else "sync",
            env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations(),
            rollout_fragment_length=64,
        )
        .training(train_batch_size_per_learner=num_envs * 64, minibatch_size=256, num_epochs=2, lr=3e-4)
        .rl_module(model_config={"fcnet_hiddens": [64, 64]})
        .debugging(seed=0)
    )


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.mark.parametrize("native", [False, True], ids=["rllib_vectorises", "native_vector_env"])
@pytest.mark.parametrize(
    ("env_id", "env_config"),
    [("mindgym/Maze-v0", MAZE), ("mindgym/Copy-v0", STREAM_COPY)],
    ids=["maze", "stream_copy"],
)
def test_ppo_runs_a_few_iterations(ray_session, env_id, env_config, native):
    algo = ppo_config(env_id, env_config, native).build_algo()
    try:
        for _ in range(3):
            result = algo.train()
    finally:
        algo.stop()
    runners = result["env_runners"]
    assert runners["num_env_steps_sampled_lifetime"] >= 3 * 16 * 64
    assert runners["num_episodes_lifetime"] > 0
    assert math.isfinite(runners["episode_return_mean"])
    learner = result["learners"]["default_policy"]
    assert math.isfinite(learner["total_loss"])
