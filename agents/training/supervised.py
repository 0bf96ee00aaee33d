"""Supervised training of a backbone from a task's oracle: the loss (masked cross-entropy, label
smoothing, multi-horizon targets, deep supervision, aux losses) and the trainer that steps on it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agents.backbones.base import Backbone, BackboneOutput
from agents.training.optimizers import build_optimizer
from agents.training.schedules import warmup_cosine
from agents.training.speed import CompiledBlocks, compile_plan
from envs.common import SupervisedBatch


@dataclass
class SupervisedConfig:
    """Backbone training: optimiser (``adamw`` or ``mugrokfast``), warm-up + cosine schedule, loss options.

    ``total_steps`` (the length of the rate schedule) defaults to the run's ``trainer.steps`` when None.
    """

    optimizer: str = "adamw"
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    total_steps: int | None = None
    min_lr_ratio: float = 0.1
    batch_size: int = 32
    label_smoothing: float = 0.0
    grad_clip: float = 1.0
    bf16: bool = False  # autocast matmuls to bfloat16; memory recurrences stay float32 inside the backbone
    compile: str = "auto"  # none | auto | loss | blocks (agents.training.speed.compile_plan); auto: CUDA only
    pad_multiple: int = 64  # compiled steps pad sequences to a multiple of this: few shapes, few recompiles
    prefetch_batches: int = 1  # a runner's sampler draws this many batches per level at once (GPU: 32)
    # hand each prefetched draw out in batches of rows of similar length, shuffled and weighted so every
    # loss position weighs what it weighs in random batches: less padding (curricula.sampler), but on
    # 12x12 mazes slower learning per minute than random batches (docs/benchmarks.md), hence off
    bucket_by_length: bool = False
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pad_multiple < 1:
            raise ValueError(f"SupervisedConfig.pad_multiple must be >= 1, got {self.pad_multiple}.")
        if self.prefetch_batches < 1:
            raise ValueError(
                f"SupervisedConfig.prefetch_batches must be >= 1 (batches drawn per level at once), "
                f"got {self.prefetch_batches}; e.g. trainer.supervised.prefetch_batches=32 on a GPU."
            )


# the metrics that are means over a batch's loss positions, and the batch weight each one takes
WEIGHTED_METRICS = {
    "supervised/loss": "loss_weight",
    "supervised/task_loss": "loss_weight",
    "supervised/accuracy": "accuracy_weight",
}


class SupervisedTrainer:
    """The backbone's optimiser and rate schedule, and one supervised step on a batch.

    On CUDA (``compile="auto"``) the step runs compiled as ``bench.backbone_throughput`` does (see
    :func:`agents.training.speed.compile_plan`), with every batch right-padded to a multiple of
    ``pad_multiple`` tokens (padding is masked out of the loss) so that a run compiles a few shapes only.
    A weighted batch (``SupervisedBatch.loss_weight``, from a length-bucketing sampler) scales its loss
    and logged loss and accuracy, so that its loss positions weigh what they weigh in random batches.
    Compiled blocks serve this step alone (:class:`agents.training.speed.CompiledBlocks`): the backbone's
    other callers (RL, evaluation) run it eager and never trigger a recompile.
    """

    def __init__(self, backbone: Backbone, config: SupervisedConfig, total_steps: int):
        self.backbone, self.config = backbone, config
        # Validity-aware loss: tokens (B, T) -> (B, T, V) bool of the targets allowed at each position
        # (a task's rule, e.g. MazeTask.allowed_targets); the rest get no probability in the loss.
        self.allowed_targets: Callable[[torch.Tensor], torch.Tensor] | None = None
        model = getattr(backbone, "module", backbone)  # the plain module inside a DDP wrapper
        device = next(model.parameters()).device
        self.plan = compile_plan(model.cfg, config.compile, device) if hasattr(model, "cfg") else "none"
        self._loss = supervised_loss
        self._forward_loss = self._eager_forward_loss
        self._blocks: CompiledBlocks | None = None
        if self.plan == "loss":
            self._forward_loss = torch.compile(self._eager_forward_loss)
        elif self.plan == "blocks":
            self._blocks = CompiledBlocks(model.blocks)
            self._loss = torch.compile(supervised_loss)
        self.optimizer = build_optimizer(
            backbone,
            name=config.optimizer,
            lr=config.lr,
            weight_decay=config.weight_decay,
            **config.optimizer_kwargs,
        )
        length = config.total_steps or total_steps
        self.scheduler = warmup_cosine(
            self.optimizer, config.warmup_steps, max(length, config.warmup_steps + 1), config.min_lr_ratio
        )

    def _eager_forward_loss(
        self, tokens: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=self.config.bf16):
            output = self.backbone(tokens, return_state=False)
        allowed = self.allowed_targets(tokens) if self.allowed_targets is not None else None
        batch = SupervisedBatch(tokens, targets, mask)
        return self._loss(output, batch, self.config.label_smoothing, allowed)

    def step(self, batch: SupervisedBatch) -> dict[str, torch.Tensor]:
        """One optimiser step of the backbone on ``batch``; returns detached metrics (no host sync)."""
        cfg = self.config
        self.backbone.train()
        if self.plan != "none":
            batch = batch.padded(-(-batch.tokens.shape[1] // cfg.pad_multiple) * cfg.pad_multiple)
            # a compiled graph is specialised to its inputs' strides; a sampler may hand out views of a
            # larger draw, so the graph gets contiguous copies (padding has made them already, mostly)
            batch = batch.with_parts(*(part.contiguous() for part in batch.parts()))
        with self._blocks.active() if self._blocks is not None else nullcontext():
            loss, metrics = self._forward_loss(batch.tokens, batch.targets, batch.loss_mask)
            if batch.weighted:  # a length-bucketed batch: its mean counts as many positions as it holds
                loss = loss * batch.loss_weight
                for name, weight in WEIGHTED_METRICS.items():
                    metrics[name] = metrics[name] * getattr(batch, weight)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        metrics["supervised/grad_norm"] = nn.utils.clip_grad_norm_(self.backbone.parameters(), cfg.grad_clip)
        metrics["supervised/lr"] = torch.tensor(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    label_smoothing: float = 0.0,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (..., V) against ``targets`` (...) over positions where ``mask``.

    Computed in float32 whatever the autocast dtype of ``logits``. With ``allowed`` (..., V) bool, the
    classes it rules out are masked before the log-softmax (the validity-aware loss: no probability on
    an invalid move) and label smoothing spreads only over the allowed classes.
    """
    if allowed is not None:
        return _allowed_cross_entropy(logits, targets, mask, label_smoothing, allowed)
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


def allowed_logits(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """float32 ``logits`` with the classes ``allowed`` rules out at -inf (they get probability 0)."""
    return logits.float().masked_fill(~allowed, float("-inf"))


def _allowed_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, smoothing: float, allowed: torch.Tensor
) -> torch.Tensor:
    if allowed.shape != logits.shape:
        raise ValueError(f"allowed {tuple(allowed.shape)} must match the logits {tuple(logits.shape)}.")
    logp = allowed_logits(logits, allowed).log_softmax(dim=-1)
    picked = logp.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    weights = mask.float() * picked.isfinite()  # a target the rule forbids (only padding) counts nothing
    losses = -torch.where(weights > 0, picked, 0.0)
    if smoothing > 0:
        spread = torch.where(allowed, logp, 0.0).sum(-1) / allowed.sum(-1).clamp_min(1)
        losses = (1.0 - smoothing) * losses - smoothing * torch.where(weights > 0, spread, 0.0)
    return (losses * weights).sum() / weights.sum().clamp_min(1.0)


def masked_accuracy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fraction of masked positions where the arg-max of ``logits`` equals the target."""
    hits = (logits.argmax(dim=-1) == targets) & mask
    return hits.sum() / mask.sum().clamp_min(1)


def supervised_loss(
    output: BackboneOutput,
    batch: SupervisedBatch,
    label_smoothing: float = 0.0,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Task loss of a backbone output: final logits, the mean over deep-supervision logits, plus aux loss.

    Multi-horizon targets (B, T, K) are scored on ``output.horizon_logits`` (a backbone built with
    ``horizons=K``); deep supervision and accuracy use the next-token horizon. Returns the scalar to
    minimise and detached 0-d tensors for logging (no host sync here). ``allowed`` (B, T, V) bool masks
    the next-token classes a rule forbids before the log-softmax (the validity-aware loss, next horizon
    only, as the maze seed does).
    """
    targets, mask = batch.targets, batch.loss_mask
    if targets.dim() == 3:
        if output.horizon_logits is None or output.horizon_logits.shape[-2] != targets.shape[-1]:
            got = None if output.horizon_logits is None else output.horizon_logits.shape[-2]
            raise ValueError(
                f"The batch has {targets.shape[-1]}-horizon targets but the backbone gives {got or 1} "
                f"horizon(s); build it with BackboneConfig(horizons={targets.shape[-1]})."
            )
        horizon_allowed = None
        if allowed is not None:
            horizon_allowed = torch.ones_like(output.horizon_logits, dtype=torch.bool)
            horizon_allowed[..., 0, :] = allowed
        task_loss = masked_cross_entropy(
            output.horizon_logits, targets, mask, label_smoothing, horizon_allowed
        )
        targets, mask = targets[..., 0], mask[..., 0]
    else:
        task_loss = masked_cross_entropy(output.logits, targets, mask, label_smoothing, allowed)
    loss = task_loss
    if output.deep_logits:
        deep = [masked_cross_entropy(x, targets, mask, label_smoothing, allowed) for x in output.deep_logits]
        loss = torch.stack(deep).mean()
    if output.aux_loss is not None:
        loss = loss + output.aux_loss
    metrics = {
        "supervised/loss": loss.detach(),
        "supervised/task_loss": task_loss.detach(),
        "supervised/accuracy": masked_accuracy(output.logits.detach(), targets, mask),
    }
    return loss, metrics
