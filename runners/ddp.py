"""DistributedDataParallel set-up for the runners, driven by torchrun's environment variables.

``torchrun --nproc_per_node=N -m runners.maze hardware=ddp`` starts N processes; each calls
:func:`setup_distributed`, which joins the process group (``nccl`` on CUDA, ``gloo`` on CPU), pins the
process to its local GPU and tells the runner its rank. Each rank builds its own envs with its own seed;
only rank 0 logs and writes checkpoints. Without torchrun the same code runs as a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from foundation import resolve_device
from runners.config import ConfigError

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job: its rank, the world size and the device it trains on."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def command_line_device(
    device: str | torch.device, key: str = "hardware.device", cpu_override: str | None = None
) -> torch.device:
    """:func:`foundation.resolve_device` with its fix worded for the command line: a device this machine
    lacks names the overrides to type (``hardware=cpu``, ``hardware.device=auto``), not Python arguments.
    ``cpu_override`` replaces the CPU fix where a runner has no ``hardware`` group (``runners.ppo``)."""
    try:
        return resolve_device(device)
    except ValueError as err:
        reason = str(err).split("; use ")[0].rstrip(".")
    cpu = cpu_override or ("hardware=cpu" if key == "hardware.device" else f"{key}=cpu")
    raise ConfigError(
        f"{key}={device}: {reason}. On the command line, run on the CPU with {cpu}, or let the run pick "
        f"a GPU when there is one and the CPU otherwise with {key}=auto."
    )


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup_distributed(ddp: bool, device: str = "auto", backend: str = "auto") -> DistInfo:
    """Join the process group when ``ddp`` is set (under torchrun), else describe a single process.

    ``device="auto"`` picks this rank's local GPU, or the CPU; ``backend="auto"`` picks nccl on CUDA and
    gloo on CPU.
    """
    if backend not in BACKENDS:
        choices = ", ".join(f"hardware.backend={b}" for b in BACKENDS)
        raise ConfigError(f"hardware.backend={backend} is not a DDP backend; use one of {choices}.")
    if not ddp:
        return DistInfo(device=command_line_device(device))
    if not launched_by_torchrun():
        raise ConfigError(
            "hardware.ddp=true needs the RANK/WORLD_SIZE variables torchrun sets; launch with "
            "`torchrun --nproc_per_node=N -m runners.<task> hardware=ddp` or drop hardware=ddp."
        )
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    resolved = command_line_device(device)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(resolved)
    if backend == "auto":
        backend = "nccl" if resolved.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, device=resolved)


def teardown_distributed() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DistributedModule(nn.parallel.DistributedDataParallel):
    """DistributedDataParallel that still looks like the module it wraps.

    The agent code reads attributes of its backbone and engine (``n_layers``, ``output_logits``,
    ``metrics()``) and stores their ``state_dict``; this wrapper forwards those to the wrapped module, keeps
    state dicts free of the ``module.`` prefix, and runs the module directly when no gradient can flow
    into its parameters (rollouts under ``no_grad``, a frozen backbone during an engine update), so DDP's
    gradient all-reduce runs exactly for the updates that train this module.
    """

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)

    def forward(self, *args, **kwargs):
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.module.parameters()):
            return super().forward(*args, **kwargs)
        return self.module(*args, **kwargs)

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def wrap_model(model: nn.Module, info: DistInfo, find_unused_parameters: bool = False) -> nn.Module:
    """Move ``model`` to this rank's device and wrap it for DDP when running distributed.

    ``find_unused_parameters`` is for modules whose configuration may leave parameters out of a forward;
    every backbone uses all of its parameters.
    """
    model = model.to(info.device)
    if not info.distributed:
        return model
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedModule(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def average_gradients_before_step(optimizer: torch.optim.Optimizer, info: DistInfo) -> None:
    """Average the gradients of ``optimizer``'s parameters over ranks just before each of its steps.

    For modules trained outside a single DDP forward/backward (the engine: its update accumulates several
    backward passes and a regulariser), this keeps every rank's copy identical: same averaged gradients,
    same optimiser state, same step. No-op when not distributed.
    """
    if not info.distributed:
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def hook(opt: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= info.world_size
        offset = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[offset : offset + g.numel()].view_as(p).clone()
            offset += g.numel()

    optimizer.register_step_pre_hook(hook)


def broadcast_object(value: object, info: DistInfo) -> object:
    """Rank 0's ``value`` on every rank (e.g. the run folder, so all ranks agree on it)."""
    if not info.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is True on at least one (e.g. a Ctrl-C that reached one rank)."""
    if not info.distributed:
        return flag
    value = torch.tensor([float(flag)], device=info.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def pooled_means(
    means: dict[str, torch.Tensor], count: int, info: DistInfo
) -> tuple[dict[str, float], int]:
    """The run's means over every rank's episodes, and how many episodes that is.

    Each rank measured ``means`` over its own ``count`` episodes; the shares may differ (5 episodes over
    2 ranks is 3 + 2), so the ranks' sums and counts are added, not their means averaged.
    """
    names = sorted(means)
    if not info.distributed:
        return {n: float(means[n]) for n in names}, count
    sums = [means[n].detach().float().reshape(()) * count for n in names]
    packed = torch.stack([*sums, torch.tensor(float(count))]).double().to(info.device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    total = round(float(packed[-1]))
    return {n: float(packed[i]) / max(total, 1) for i, n in enumerate(names)}, total


def share_of(total: int, info: DistInfo) -> int:
    """This rank's share of ``total`` episodes: the ranks' shares differ by at most one and sum to
    ``total``; a rank gets at least one, so every rank runs the same collectives."""
    base, extra = divmod(total, info.world_size)
    return max(base + (1 if info.rank < extra else 0), 1)


def gather_to_main(value: object, info: DistInfo) -> list[object] | None:
    """Every rank's ``value`` in rank order on rank 0 (None on the others); ``[value]`` in a single
    process."""
    if not info.distributed:
        return [value]
    gathered: list[object] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered
