"""Jumanji's Maze-v0 stepped as its users step it, for a side-by-side with MazeVectorEnv in one process.

``VmapAutoResetWrapper(jumanji.make("Maze-v0"))`` (10x10, a new maze generated at every reset), random
actions drawn beforehand (as the MindGym benchmark draws its), a chunk of steps per jitted ``lax.scan``.
Every step's observation (walls, agent and target positions, action mask, step count) is folded into a
checksum so XLA cannot drop it: the observation is consumed, as a policy would read it. Needs
``pip install -e .[bench]`` (jax, jumanji); ``available()`` says whether they import, so the benchmark
skips cleanly without them.
"""

from __future__ import annotations

import os
import time
from typing import Any

# JAX would otherwise take 75% of the GPU at import, leaving the torch env beside it short of memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def available() -> str | None:
    """None when jax and jumanji import, else the reason they do not (for the skip message)."""
    try:
        import jax  # noqa: F401
        import jumanji  # noqa: F401
    except ImportError as err:
        return f"{err} (pip install -e .[bench], or jax with jumanji, enables the Jumanji comparison)"
    return None


def jax_device(device_type: str) -> Any:
    """The JAX device of the same kind as the torch device ("cuda" -> a GPU, else a CPU); the first one."""
    import jax

    kind = "gpu" if device_type == "cuda" else "cpu"
    try:
        return jax.devices(kind)[0]
    except RuntimeError as err:
        raise RuntimeError(
            f"JAX sees no {kind} device ({err}); install jax with {kind} support (jax[cuda12] for a GPU) "
            "or run the benchmark with --device cpu."
        ) from None


def steps_per_s(
    num_envs: int, chunk: int, device_type: str, autoreset: bool = True, repeats: int = 5, seed: int = 0
) -> float:
    """Median sub-env steps/s of Jumanji Maze-v0 over ``num_envs`` envs on one device.

    ``autoreset=False`` steps ``VmapWrapper`` instead: finished episodes are never reset (no new mazes),
    which is not a training setting but shows what the autoreset costs."""
    import jax
    import jax.numpy as jnp
    import jumanji
    from jumanji.wrappers import VmapAutoResetWrapper, VmapWrapper

    device = jax_device(device_type)
    env = (VmapAutoResetWrapper if autoreset else VmapWrapper)(jumanji.make("Maze-v0"))

    def checksum(obs: Any) -> jax.Array:
        parts = [
            obs.walls.sum(dtype=jnp.int32),
            obs.agent_position.row.sum() + obs.agent_position.col.sum(),
            obs.target_position.row.sum() + obs.target_position.col.sum(),
            obs.action_mask.sum(dtype=jnp.int32),
            obs.step_count.sum(),
        ]
        return sum(p.astype(jnp.int32) for p in parts)

    def run(state: Any, actions: jax.Array) -> tuple[Any, jax.Array]:
        def body(carry: tuple[Any, jax.Array], action: jax.Array) -> tuple[tuple[Any, jax.Array], None]:
            state, total = carry
            state, timestep = env.step(state, action)
            return (state, total + checksum(timestep.observation)), None

        (state, total), _ = jax.lax.scan(body, (state, jnp.int32(0)), actions)
        return state, total

    with jax.default_device(device):
        reset_key, action_key = jax.random.split(jax.random.PRNGKey(seed))
        state, _ = jax.jit(env.reset)(jax.random.split(reset_key, num_envs))
        actions = jax.random.randint(action_key, (chunk, num_envs), 0, 4, dtype=jnp.int32)  # as MindGym's
        run_chunk = jax.jit(run, donate_argnums=(0,))
        for _ in range(2):  # compile and warm up
            state, total = run_chunk(state, actions)
        total.block_until_ready()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            state, total = run_chunk(state, actions)
            total.block_until_ready()
            times.append(time.perf_counter() - start)
    times.sort()
    return chunk * num_envs / times[len(times) // 2]
