"""The foundation every MindGym package imports: device selection, seeding and atomic checkpoint I/O.

It imports nothing from envs, agents, curricula or runners, so each of them can build on it without
reaching sideways or upwards.
"""

from foundation.checkpoint import (
    CheckpointError,
    UnverifiedCheckpointWarning,
    check_state_matches,
    load_checkpoint,
    save_checkpoint,
    state_mismatches,
)
from foundation.device import resolve_device
from foundation.seeding import (
    check_seed,
    derive_seed,
    make_generator,
    restore_generator,
    rng_state,
    seed_everything,
    set_rng_state,
)

__all__ = [
    "CheckpointError",
    "UnverifiedCheckpointWarning",
    "check_seed",
    "check_state_matches",
    "derive_seed",
    "load_checkpoint",
    "make_generator",
    "resolve_device",
    "restore_generator",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "state_mismatches",
]
