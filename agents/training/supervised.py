"""Supervised losses for a backbone: masked cross-entropy, label smoothing, deep supervision, aux losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from agents.backbones.base import BackboneOutput
from envs.common import SupervisedBatch


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (..., V) against ``targets`` (...) over positions where ``mask``.

    Computed in float32 whatever the autocast dtype of ``logits``.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"Logits of shape {tuple(logits.shape)} do not match targets of shape {tuple(targets.shape)}: "
            "a backbone must give one distribution per target (for (B, T, K) multi-horizon targets, "
            "build it with BackboneConfig(horizons=K))."
        )
    losses = F.cross_entropy(
        logits.float().flatten(0, -2),
        targets.flatten().long(),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    weights = mask.flatten().float()
    return (losses * weights).sum() / weights.sum().clamp_min(1.0)


def masked_accuracy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of masked positions where the arg-max of ``logits`` equals the target."""
    hits = (logits.argmax(dim=-1) == targets) & mask
    return hits.sum() / mask.sum().clamp_min(1)


def supervised_loss(
    output: BackboneOutput, batch: SupervisedBatch, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Task loss of a backbone output: final logits, the mean over deep-supervision logits, plus aux loss.

    Multi-horizon targets (B, T, K) are scored on ``output.horizon_logits`` (a backbone built with
    ``horizons=K``); deep supervision and accuracy use the next-token horizon. Returns the scalar to
    minimise and detached 0-d tensors for logging (no host sync here).
    """
    targets, mask = batch.targets, batch.loss_mask
    if targets.dim() == 3:
        if output.horizon_logits is None or output.horizon_logits.shape[-2] != targets.shape[-1]:
            got = None if output.horizon_logits is None else output.horizon_logits.shape[-2]
            raise ValueError(
                f"The batch has {targets.shape[-1]}-horizon targets but the backbone gives {got or 1} "
                f"horizon(s); build it with BackboneConfig(horizons={targets.shape[-1]})."
            )
        task_loss = masked_cross_entropy(output.horizon_logits, targets, mask, label_smoothing)
        targets, mask = targets[..., 0], mask[..., 0]
    else:
        task_loss = masked_cross_entropy(output.logits, targets, mask, label_smoothing)
    loss = task_loss
    if output.deep_logits:
        deep = [masked_cross_entropy(x, targets, mask, label_smoothing) for x in output.deep_logits]
        loss = torch.stack(deep).mean()
    if output.aux_loss is not None:
        loss = loss + output.aux_loss
    metrics = {
        "supervised/loss": loss.detach(),
        "supervised/task_loss": task_loss.detach(),
        "supervised/accuracy": masked_accuracy(output.logits.detach(), targets, mask),
    }
    return loss, metrics
