"""Looking inside a backbone at eval time: attention maps, memory contents and addressing as images.

Attention maps are captured with forward hooks on the backbone's ``SelfAttention`` modules: the hook sees
the block's input and rotary tables and recomputes that call's attention probabilities (the fused
``scaled_dot_product_attention`` kernel never materialises them). Memory is drawn from the streaming
state the backbone returns after reading the sample: the external memory's slots and their usage, the
Hebbian fast-weight matrix, the Titans memory's weights (first head / first row where they have more
dimensions). The external memory also records its read weights (per token) and write weights (per write)
while the sample runs. Everything runs on one sample under ``no_grad``, only when an evaluation asks.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from agents.backbones.external import ExternalMemory
from agents.backbones.layers import SelfAttention, apply_rotary
from runners.ddp import unwrap_model
from runners.logging import RunLogger


@torch.no_grad()
def inspect_sample(backbone: torch.nn.Module, tokens: torch.Tensor) -> tuple[list[torch.Tensor], dict]:
    """Attention maps (heads, T, T) of every attention call and the memory state, for ``tokens[:1]``."""
    maps: list[torch.Tensor] = []

    def hook(module: SelfAttention, args: tuple, output: Any) -> None:
        x, rope = args[0], args[1]
        t = x.shape[1]
        q, k, _ = module.qkv(x[:1]).view(1, t, 3, module.n_heads, module.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(module.head_dim)
        if module.causal:
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            scores = scores.masked_fill(~mask, float("-inf"))
        maps.append(scores.softmax(dim=-1)[0].cpu())

    model = unwrap_model(backbone)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, SelfAttention)]
    external = external_memories(model)
    was_training = model.training
    try:
        model.eval()
        for memory in external.values():
            memory.record_addressing = True
        output = model(tokens[:1])
    finally:
        for handle in handles:
            handle.remove()
        for memory in external.values():
            memory.record_addressing = False
        model.train(was_training)
    return maps, {**memory_matrices(output.state), **addressing_matrices(external)}


def external_memories(model: torch.nn.Module) -> dict[int, ExternalMemory]:
    """The DNC-style memories of a backbone's blocks, by block index."""
    blocks = getattr(model, "blocks", [])
    return {
        i: b.memory for i, b in enumerate(blocks) if isinstance(getattr(b, "memory", None), ExternalMemory)
    }


def addressing_matrices(memories: dict[int, ExternalMemory]) -> dict[str, torch.Tensor]:
    """Read weights (tokens x slots, first read head) and write weights (writes x slots) of the last call."""
    found: dict[str, torch.Tensor] = {}
    for i, memory in memories.items():
        if "read" in memory.addressing:
            found[f"block{i}.read_weights"] = memory.addressing["read"][0, :, 0].float().cpu()
        if "write" in memory.addressing:
            found[f"block{i}.write_weights"] = memory.addressing["write"][0].float().cpu()
    return found


def memory_matrices(state: Any) -> dict[str, torch.Tensor]:
    """2-D views of every memory tensor in a backbone's streaming state, named ``block<i>.<part>``."""
    found: dict[str, torch.Tensor] = {}
    layers = state.get("layers", []) if isinstance(state, dict) else []
    for i, entry in enumerate(layers):
        memory = entry.get("memory") if isinstance(entry, dict) else None
        parts = memory.items() if isinstance(memory, dict) else [("memory", memory)]
        for part, value in parts:
            if part != "pending" and isinstance(value, torch.Tensor) and value.ndim >= 2 and value.numel():
                matrix = value.detach().float()[0]
                matrix = matrix[None] if matrix.ndim == 1 else matrix
                while matrix.ndim > 2:
                    matrix = matrix[0]
                found[f"block{i}.{part}"] = matrix.cpu()
    return found


def heads_figure(maps: torch.Tensor, title: str) -> Any:
    """One panel per head of a (heads, T, T) attention map."""
    heads = maps.shape[0]
    cols = min(heads, 4)
    rows = math.ceil(heads / cols)
    figure, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows), squeeze=False)
    for h, ax in enumerate(axes.flat):
        ax.axis("off")
        if h < heads:
            ax.imshow(maps[h].numpy(), cmap="magma", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_title(f"head {h}", fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def log_model_internals(backbone: torch.nn.Module, tokens: torch.Tensor, logger: RunLogger, step: int) -> int:
    """Draw attention maps (one image per attention call) and memory contents; returns how many images."""
    if not logger.enabled:
        return 0
    maps, memory = inspect_sample(backbone, tokens)
    for i, layer_maps in enumerate(maps):
        logger.figure(f"inspect/attention/call{i}", heads_figure(layer_maps, f"attention, call {i}"), step)
    for name, matrix in memory.items():
        figure, ax = plt.subplots(figsize=(4, 3))
        ax.imshow(matrix.numpy(), cmap="viridis", aspect="auto")
        ax.set_title(name, fontsize=8)
        figure.tight_layout()
        logger.figure(f"inspect/memory/{name}", figure, step)
    return len(maps) + len(memory)
