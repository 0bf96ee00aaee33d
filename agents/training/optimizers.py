"""Optimisers: AdamW (default) and MuGrokfast (Muon for hidden weight matrices, AdamW for the rest,
a Grokfast EMA gradient filter and QK-clip).

MuGrokfast is a real ``torch.optim.Optimizer``: its ``param_groups`` are the Muon and AdamW groups (so LR
schedulers work), and its ``state_dict`` holds both inner optimisers' state plus the Grokfast EMAs, so a
checkpoint resumes exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("adamw", "mugrokfast")


def _split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden weight matrices for Muon, everything else for AdamW). Muon takes the weights of the
    ``nn.Linear`` layers except the output head; embeddings (and a head tied to them), learned memory
    initialisations, norms and biases go to AdamW, as the Muon authors advise. A shared parameter is
    listed once."""
    head = getattr(model, "head", None)
    hidden = {
        id(m.weight)
        for m in model.modules()
        if isinstance(m, nn.Linear) and m is not head and m.weight.ndim == 2
    }
    if isinstance(head, nn.Linear):
        hidden.discard(id(head.weight))
    for module in model.modules():  # a Linear whose weight is tied to an embedding is an embedding
        if isinstance(module, nn.Embedding):
            hidden.discard(id(module.weight))
    matrices, others = [], []
    for p in model.parameters():  # parameters() already de-duplicates tied weights
        if p.requires_grad:
            (matrices if id(p) in hidden else others).append(p)
    return matrices, others


def _decay_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and embeddings only, not on norms' gains or biases."""
    params = list(params)
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class MuGrokfast(torch.optim.Optimizer):
    """Muon on hidden 2-D weights + AdamW on the rest, after a Grokfast EMA filter, then QK-clip.

    Grokfast (Lee et al. 2024): ema <- alpha * ema + (1 - alpha) * g;  g <- g + lambda * ema, which
    amplifies the slow gradient component. QK-clip (MuonClip, Kimi K2): after each step, every attention
    head whose largest recorded logit exceeded ``qk_clip`` has its query and key rows scaled by
    sqrt(qk_clip / max_logit), so that logit comes back to the threshold.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.95),
        eps: float = 1e-8,
        momentum: float = 0.95,
        grokfast_alpha: float = 0.98,
        grokfast_lambda: float = 2.0,
        qk_clip: float | None = 100.0,
    ):
        if not 0.0 <= grokfast_alpha < 1.0:
            raise ValueError(f"grokfast_alpha must lie in [0, 1), got {grokfast_alpha}.")
        if qk_clip is not None and qk_clip <= 0:
            raise ValueError(f"qk_clip must be a positive logit bound or None (off), got {qk_clip}.")
        matrices, others = _split_parameters(model)
        # match_rms_adamw scales Muon's update to AdamW's RMS, so one learning rate serves both.
        self.muon = (
            torch.optim.Muon(
                matrices, lr=lr, weight_decay=weight_decay, momentum=momentum, adjust_lr_fn="match_rms_adamw"
            )
            if matrices
            else None
        )
        self.adamw = (
            torch.optim.AdamW(_decay_groups(others, weight_decay), lr=lr, betas=betas, eps=eps)
            if others
            else None
        )
        groups = [
            *(self.muon.param_groups if self.muon else []),
            *(self.adamw.param_groups if self.adamw else []),
        ]
        super().__init__(groups, {})
        self._link_children()
        self.grokfast_alpha, self.grokfast_lambda, self.qk_clip = grokfast_alpha, grokfast_lambda, qk_clip
        self._params = [p for g in self.param_groups for p in g["params"]]
        self.grokfast_ema: list[torch.Tensor | None] = [None] * len(self._params)
        self._attention = [m for m in model.modules() if hasattr(m, "record_max_logit") and hasattr(m, "qkv")]
        for module in self._attention:
            module.record_max_logit = qk_clip is not None

    def _link_children(self) -> None:
        """The inner optimisers share this optimiser's groups and state (so state_dict sees all of it)."""
        n_muon = len(self.muon.param_groups) if self.muon else 0
        if self.muon:
            self.muon.param_groups = self.param_groups[:n_muon]
            self.muon.state = self.state
        if self.adamw:
            self.adamw.param_groups = self.param_groups[n_muon:]
            self.adamw.state = self.state

    @torch.no_grad()
    def _grokfast(self) -> None:
        if self.grokfast_lambda == 0.0:
            return
        for i, p in enumerate(self._params):
            if p.grad is None:
                continue
            ema = self.grokfast_ema[i]
            if ema is None:
                ema = self.grokfast_ema[i] = p.grad.detach().clone()
            else:
                ema.lerp_(p.grad, 1.0 - self.grokfast_alpha)
            p.grad.add_(ema, alpha=self.grokfast_lambda)

    @torch.no_grad()
    def _clip_qk(self) -> None:
        for module in self._attention:
            heads, dh = module.n_heads, module.head_dim
            scale = (self.qk_clip / module.max_logit.clamp(min=self.qk_clip)).sqrt()  # 1 where below bound
            rows = scale.repeat_interleave(dh).to(module.qkv.weight.dtype)  # one factor per q (and k) row
            d = heads * dh
            module.qkv.weight[:d].mul_(rows[:, None])
            module.qkv.weight[d : 2 * d].mul_(rows[:, None])
            module.max_logit.zero_()

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._grokfast()
        if self.muon:
            self.muon.step()
        if self.adamw:
            self.adamw.step()
        if self.qk_clip is not None:
            self._clip_qk()
        return loss

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["grokfast_ema"] = {i: e for i, e in enumerate(self.grokfast_ema) if e is not None}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        emas = state_dict.pop("grokfast_ema", {})
        super().load_state_dict(state_dict)
        self._link_children()
        self.grokfast_ema = [None] * len(self._params)
        for i, ema in emas.items():
            self.grokfast_ema[int(i)] = ema.to(self._params[int(i)].device)


def build_optimizer(
    model: nn.Module,
    name: str = "adamw",
    lr: float = 3e-4,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    momentum: float = 0.95,
    grokfast_alpha: float = 0.98,
    grokfast_lambda: float = 2.0,
    qk_clip: float | None = 100.0,
) -> torch.optim.Optimizer:
    """AdamW (``name="adamw"``; no decay on norms and biases; fused when every parameter is on CUDA) or
    MuGrokfast (``name="mugrokfast"``)."""
    if name == "adamw":
        params = [p for p in model.parameters() if p.requires_grad]
        # The fused CUDA kernel updates every parameter in a few launches instead of a dozen foreach passes.
        fused = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
        return torch.optim.AdamW(
            _decay_groups(params, weight_decay), lr=lr, betas=tuple(betas), eps=eps, fused=fused or None
        )
    if name == "mugrokfast":
        return MuGrokfast(
            model, lr, weight_decay, tuple(betas), eps, momentum, grokfast_alpha, grokfast_lambda, qk_clip
        )
    raise ValueError(f"Unknown optimizer {name!r}; use one of {OPTIMIZERS}.")
