"""How fast training runs: the compile strategy and the FLOP accounting behind ``train/mfu``.

The runners' supervised step and ``bench.backbone_throughput`` use the same two pieces, so what the
benchmark shows possible is what a run gets:

- :func:`compile_plan`: the plain transformer compiles forward and loss as one graph; backbones with a
  memory, ACT or recursion compile each block (identical blocks share one compiled graph), since their
  chunk loops make whole-model graphs slow to compile.
- :class:`CompiledBlocks`: those compiled blocks, in force only inside the supervised step, so that the
  backbone's other calls (RL rollouts and updates, evaluation) never recompile them.
- :func:`flops_per_token` and :func:`peak_flops`: model FLOPs utilisation in the PaLM / nanoGPT convention.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from agents.backbones.config import BackboneConfig

COMPILE_PLANS = ("none", "auto", "loss", "blocks")
# Dense bf16 tensor-core peaks (FLOP/s) by device-name fragment, most specific first.
PEAK_BF16 = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("H800", 989e12), ("A100", 312e12))


def compile_plan(cfg: BackboneConfig, requested: str, device: torch.device) -> str:
    """What to compile: ``none``, ``loss`` (forward + loss as one graph) or ``blocks``.

    ``auto`` compiles on CUDA only (on the CPU, compilation costs more than a short run gains): ``loss``
    for a plain transformer, ``blocks`` for one with a memory module, ACT or recursion.
    """
    if requested not in COMPILE_PLANS:
        raise ValueError(f"compile={requested!r} is unknown; use one of {COMPILE_PLANS}.")
    if requested != "auto":
        return requested
    if device.type != "cuda":
        return "none"
    plain = cfg.memory is None and not cfg.act and cfg.recursion == 1
    return "loss" if plain else "blocks"


def flops_per_token(cfg: BackboneConfig, n_params: int, seq_len: int, causal_half: bool = False) -> float:
    """Training FLOPs per token: 6N for the weights plus attention, 12 * L * T * D in the PaLM / nanoGPT
    convention, half of that when counting only the causal triangle that flash kernels compute."""
    attention = 12.0 * cfg.n_layers * seq_len * cfg.d_model
    return 6.0 * n_params + (attention / 2 if causal_half else attention)


def peak_flops(device: torch.device, override_tflops: float | None = None) -> float | None:
    """The bf16 peak of ``device`` in FLOP/s (None on CPU or an unknown GPU without an override)."""
    if override_tflops is not None:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


class CompiledBlocks:
    """Each block's forward compiled (identical blocks share one graph), in force only inside
    :meth:`active`: the supervised step's forward and backward.

    ``nn.Module.compile()`` would compile every call of the blocks: RL rollouts streaming one token at a
    time through a growing KV cache, the RL update, evaluation, bits per character and needle scoring
    each differ in grad mode, batch, length or state, and each difference recompiled the blocks (minutes
    on a cold cache) until torch.compile's recompile limit (8 per function) sent every new kind of call
    back to eager. Scoped here, those calls run eager from the start and the training graph compiles
    once per padded length.
    """

    def __init__(self, blocks: nn.ModuleList):
        self._forwards = [(block, torch.compile(block.forward)) for block in blocks]

    @contextmanager
    def active(self) -> Iterator[None]:
        """The blocks run their compiled forwards inside this context (and an activation-checkpointed
        backward, which re-runs them, stays inside it too); the class's eager forward outside."""
        for block, compiled in self._forwards:
            block.forward = compiled  # an instance attribute shadows the class's forward
        try:
            yield
        finally:
            for block, _ in self._forwards:
                del block.forward
