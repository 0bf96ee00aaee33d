"""Seeding: one call seeds Python, NumPy and torch; each component gets its own torch.Generator.

Per-component generators keep streams independent, so adding a sampler or an env does not shift the
random numbers another component sees, and a run is reproducible from one integer.
"""

from __future__ import annotations

import hashlib
import operator
import random
from typing import Any

import numpy as np
import torch

from foundation.device import resolve_device


def derive_seed(seed: int, component: str) -> int:
    """A stable 63-bit seed for ``component`` derived from the run seed (same on every machine)."""
    digest = hashlib.blake2b(f"{int(seed)}:{component}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


SEED_RULE = "a seed must be None or an int in [0, 2**64)"


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``seed`` as a plain int (None stays None); a ValueError naming the seed rule for anything else.

    Accepts Python and NumPy integers (not bools), so every env takes the seeds its users pass.
    """
    if seed is None:
        return None
    if isinstance(seed, bool | np.bool_):
        raise ValueError(f"{name}={seed!r}: {SEED_RULE}, not a bool.")
    try:
        value = operator.index(seed)
    except TypeError:
        raise ValueError(f"{name}={seed!r}: {SEED_RULE}, not a {type(seed).__name__}.") from None
    if not 0 <= value < 2**64:
        raise ValueError(f"{name}={value}: {SEED_RULE}; pass a non-negative int below 2**64.")
    return value


def make_generator(
    seed: int | None, component: str = "", device: str | torch.device = "cpu"
) -> torch.Generator:
    """A torch.Generator on ``device`` seeded from ``seed`` and the component's name.

    The one seeding recipe of the project. Without a seed, one is drawn from torch's global stream:
    reproducible after :func:`seed_everything`, and unlike ``torch.seed()`` it does not reseed the global
    generator.
    """
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    generator = torch.Generator(device=resolve_device(device))
    generator.manual_seed(derive_seed(seed, component) if component else int(seed))
    return generator


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global state and torch (CPU and every CUDA device).

    ``deterministic=True`` also asks torch for deterministic kernels (slower; for debugging).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state() -> dict:
    """Every global RNG state, as tensors and plain types (safe for ``torch.load(weights_only=True)``)."""
    state = {
        "python": _encode_python_state(random.getstate()),
        "numpy": _encode_numpy_state(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned, so a resumed run draws the same numbers."""
    random.setstate(_decode_python_state(state["python"]))
    np.random.set_state(_decode_numpy_state(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _encode_python_state(state: tuple) -> dict:
    version, internal, gauss = state
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _decode_python_state(state: dict) -> tuple:
    return (state["version"], tuple(int(x) for x in state["internal"].tolist()), state["gauss"])


def _encode_numpy_state(state: tuple) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _decode_numpy_state(state: dict) -> tuple:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, state["pos"], state["has_gauss"], state["cached"])


def restore_generator(generator: torch.Generator, state: torch.Tensor, name: str) -> None:
    """``generator.set_state(state)`` with an error that says what to do when the state was saved by a
    generator of another device type (a CUDA run resumed on the CPU, say): such a resume cannot repeat the
    run's random numbers, so it is refused rather than silently reseeded."""
    try:
        generator.set_state(state.cpu())
    except RuntimeError:
        raise ValueError(
            f"The checkpoint's random generator {name!r} was saved on another device type than this run's "
            f"{generator.device.type}: resume on the device it was trained on (hardware.device=...), or "
            "score its weights anywhere with python -m runners.evaluate checkpoint=..."
        ) from None
