"""StepGraph: replay a TorchVectorEnv's whole step as one CUDA graph.

At 100k+ sub-envs a fused step is a handful of kernels, and launching them from Python (guards, output
allocation, one launch each) takes longer than running them. A CUDA graph records the step once and
replays it with a single launch, so the host cost of a step no longer grows with its kernel count.

How state stays consistent: a graph reads and writes fixed addresses, while the env's step assigns new
tensors to its attributes (``self._pos = torch.where(...)``). So the tensors the env holds when the graph
is recorded become its *state buffers*: the recorded step ends by copying every attribute's new value
into its buffer and pointing the attribute back at it. Before each replay, an attribute that something
else replaced (``reset()``, ``set_level``) is copied into its buffer, so eager calls and replays mix freely.
Tensors the env reads but does not own (a maze pool) must be changed in place only.

The returned tensors are the graph's outputs: the next step overwrites them (as Isaac Gym's buffers are).
Copy what you keep beyond one step; a rollout buffer that stores each step already does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

StepFn = Callable[[torch.Tensor], tuple[Any, ...]]


def tensor_attributes(obj: object) -> dict[str, torch.Tensor]:
    """The tensor-valued instance attributes of ``obj`` (the state of a TorchVectorEnv)."""
    return {name: value for name, value in vars(obj).items() if isinstance(value, torch.Tensor)}


class StepGraph:
    """Records ``step_fn`` (a function of the action tensor that updates ``owner``'s tensor attributes)
    into a CUDA graph at the first call, then replays it."""

    def __init__(self, owner: object, step_fn: StepFn, warmup: int = 3):
        self.owner, self.step_fn, self.warmup = owner, step_fn, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.buffers: dict[str, torch.Tensor] = {}
        self.actions: torch.Tensor | None = None
        self.outputs: tuple[Any, ...] = ()

    def __call__(self, actions: torch.Tensor) -> tuple[Any, ...]:
        if self.graph is None:
            self._record(actions)
        else:
            self._rebind()
        assert self.actions is not None
        self.actions.copy_(actions)
        self.graph.replay()
        return self.outputs

    def _rebind(self) -> None:
        """Copy any attribute replaced since the last replay into its state buffer."""
        owner = self.owner
        for name, buffer in self.buffers.items():
            current = getattr(owner, name)
            if current is not buffer:
                if current.shape != buffer.shape or current.dtype != buffer.dtype:
                    raise RuntimeError(
                        f"{type(owner).__name__}.{name} changed shape or dtype after its step was recorded "
                        f"as a CUDA graph ({tuple(buffer.shape)} {buffer.dtype} -> {tuple(current.shape)} "
                        f"{current.dtype}); make a new env instead."
                    )
                buffer.copy_(current)
                setattr(owner, name, buffer)

    def _record(self, actions: torch.Tensor) -> None:
        """Warm up (compilation, library handles) on a side stream without changing the env, then record."""
        owner = self.owner
        self.buffers = tensor_attributes(owner)
        self.actions = actions.detach().clone()
        snapshot = {name: value.clone() for name, value in self.buffers.items()}
        side = torch.cuda.Stream(self.actions.device)
        side.wait_stream(torch.cuda.current_stream(self.actions.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.step_fn(self.actions)
        torch.cuda.current_stream(self.actions.device).wait_stream(side)
        for name, buffer in self.buffers.items():  # undo the warm-up steps
            buffer.copy_(snapshot[name])
            setattr(owner, name, buffer)
        del snapshot
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.outputs = self.step_fn(self.actions)
            for name, buffer in self.buffers.items():
                current = getattr(owner, name)
                if current is not buffer:
                    buffer.copy_(current)
                    setattr(owner, name, buffer)
        self.graph = graph
