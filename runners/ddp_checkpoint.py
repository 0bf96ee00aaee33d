"""What a DDP checkpoint keeps of each rank, so that a resumed run continues every rank exactly.

The ranks share their models and optimisers (DDP keeps them equal), but each rank draws its own batches,
levels and rollouts: its sampler, its curriculum's generator, its agent's generators and its global RNG
states are its own. Rank 0 alone writes the checkpoint; it holds rank 0's full state as before, plus
``ranks``: each rank's own part (everything but the shared models and optimisers). On resume each rank
loads the shared state with its own part laid over it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from foundation import rng_state
from runners.ddp import DistInfo, gather_to_main

logger = logging.getLogger(__name__)

SHARED_AGENT_PARTS = ("backbone", "engine", "supervised", "rl")  # equal on every rank under DDP


def rank_part(experiment_state: Mapping[str, Any]) -> dict[str, Any]:
    """This rank's own part of an experiment state: all but the agent's models and optimisers, on the CPU."""
    own = {k: v for k, v in experiment_state.items() if k != "agent"}
    if "agent" in experiment_state:
        own["agent"] = {k: v for k, v in experiment_state["agent"].items() if k not in SHARED_AGENT_PARTS}
    return _to_cpu(own)


def gather_rank_parts(experiment_state: Mapping[str, Any], info: DistInfo) -> list[dict[str, Any]] | None:
    """Every rank's own part and global RNG state, in rank order, on rank 0 (None elsewhere and when not
    distributed). A collective: every rank calls it for the same checkpoint."""
    if not info.distributed:
        return None
    mine = {"experiment": rank_part(experiment_state), "rng": _to_cpu(rng_state())}
    return gather_to_main(mine, info)


def resume_state_of_rank(checkpoint: Mapping[str, Any], info: DistInfo) -> tuple[dict[str, Any], dict]:
    """(experiment state, global RNG state) this rank resumes from: the checkpoint's own, with this rank's
    part laid over it when the checkpoint kept one.

    A checkpoint of a run with another number of ranks still resumes (the models are the run's), but not
    exactly: ranks it has no part for continue rank 0's data stream, and rank 0 says so.
    """
    experiment, rng = dict(checkpoint["experiment"]), checkpoint["rng"]
    parts = checkpoint.get("ranks")
    if parts is None:
        return experiment, rng
    if len(parts) != info.world_size and info.is_main:
        logger.warning(
            "This checkpoint was written by a %d-process run and is resumed by %d; the models continue "
            "exactly, the ranks' data streams do not. Resume with torchrun --nproc_per_node=%d for an exact "
            "resume.",
            len(parts),
            info.world_size,
            len(parts),
        )
    if info.rank >= len(parts):
        return experiment, rng
    part = parts[info.rank]
    own = part["experiment"]
    experiment.update({k: v for k, v in own.items() if k != "agent"})
    if "agent" in own:
        experiment["agent"] = {**experiment["agent"], **own["agent"]}
    return experiment, part["rng"]


def _to_cpu(value: Any) -> Any:
    """``value`` with every tensor moved to the CPU (what gather_object pickles must not hold on a GPU)."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value
