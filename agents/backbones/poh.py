"""PoHBackbone: pointer-over-heads routing inside a two-timescale (HRM) reasoning loop, the maze seed's model.

Every block has a router that gives each token its own weights over the block's attention heads (a
softmax, or the top-k heads renormalised); a head's output is scaled by its weight times the number of
heads, so uniform routing is plain multi-head attention. The block stack runs ``recursion`` = R times
(re-injecting the token embeddings before every pass after the first, as the transformer's refinement
does). Each router carries two recurrent states per token, as in the seed's HRM controller: a fast
low-level state updated by a GRU cell at every pass, and a slow high-level state updated only at passes
0, T, 2T, ... (T = ``hrm_period``), which conditions the fast one. The states live within one forward.

The routing entropy (mean over tokens, blocks and passes) is logged as ``poh/route_entropy``; with
``route_entropy_weight`` = lambda > 0 the forward returns lambda * entropy as ``aux_loss`` (the supervised
loss adds it), lambda falling linearly to 0 over ``route_entropy_anneal_steps`` training forwards when
that is set (the count is a buffer, so checkpoints keep the schedule's place).

Routers look at one token at a time, so the model stays causal. It reads whole sequences: ``state`` is
always None (callers such as the greedy rollout then re-read the sequence each step).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from agents.backbones.base import BackboneOutput, Inspection, InspectionMap
from agents.backbones.config import BackboneConfig
from agents.backbones.layers import FeedForward, RotaryEmbedding, SelfAttention, apply_rotary
from agents.backbones.linear import Linear
from agents.backbones.maze_encoder import MazeGridEncoder
from agents.backbones.transformer import TransformerBackbone


class Routing(NamedTuple):
    """One router call: weights (B, T, H) summing to 1 per token, the new fast and slow states (B, T, C),
    and the entropy of the weights per token (B, T)."""

    weights: torch.Tensor
    fast: torch.Tensor
    slow: torch.Tensor
    entropy: torch.Tensor


class HeadRouter(nn.Module):
    """The per-token two-timescale controller of one block (the seed's HRM pointer controller, per token).

    fast' = LN(GRU_L([x, slow], fast)) every pass; slow' = LN(GRU_H(x, slow)) on update passes only;
    logits = W (fast' + M slow') / temperature, x = P(norm(h)) the token's projected hidden state.
    """

    def __init__(self, d_model: int, n_heads: int, d_ctrl: int, topk: int = 0, temperature: float = 1.0):
        super().__init__()
        self.n_heads, self.d_ctrl, self.topk, self.temperature = n_heads, d_ctrl, topk, temperature
        self.norm = nn.RMSNorm(d_model)
        self.inp = Linear(d_model, d_ctrl)
        self.fast_cell = nn.GRUCell(2 * d_ctrl, d_ctrl)
        self.slow_cell = nn.GRUCell(d_ctrl, d_ctrl)
        self.fast_norm = nn.LayerNorm(d_ctrl)
        self.slow_norm = nn.LayerNorm(d_ctrl)
        self.mix = Linear(d_ctrl, d_ctrl, bias=False)
        self.route = Linear(d_ctrl, n_heads)

    def forward(
        self, h: torch.Tensor, fast: torch.Tensor | None, slow: torch.Tensor | None, update_slow: bool
    ) -> Routing:
        b, t, _ = h.shape
        x = self.inp(self.norm(h)).float().reshape(b * t, self.d_ctrl)
        zeros = x.new_zeros(b * t, self.d_ctrl)
        fast = zeros if fast is None else fast.reshape(b * t, self.d_ctrl)
        slow = zeros if slow is None else slow.reshape(b * t, self.d_ctrl)
        with torch.autocast(h.device.type, enabled=False):  # small recurrent cells stay float32
            if update_slow:
                slow = self.slow_norm(self.slow_cell(x, slow))
            fast = self.fast_norm(self.fast_cell(torch.cat((x, slow), dim=-1), fast))
            logits = self.route(fast + self.mix(slow)).view(b, t, self.n_heads) / self.temperature
            weights = logits.softmax(dim=-1)
            if self.topk and self.topk < self.n_heads:
                kept = torch.zeros_like(weights).scatter(-1, weights.topk(self.topk, dim=-1).indices, 1.0)
                weights = weights * kept
                weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-9)
            entropy = -(weights * weights.clamp_min(1e-12).log()).sum(dim=-1)
        return Routing(weights, fast.view(b, t, -1), slow.view(b, t, -1), entropy)


class RoutedAttention(SelfAttention):
    """Self-attention whose heads are weighted per token: output of head j at token t times w[t, j] * H."""

    def forward(  # type: ignore[override]
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        weights: torch.Tensor,
        head_scale: torch.Tensor | None = None,
        inspect: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        probs = self.probabilities(q, k) if inspect else None
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal and t > 1, dropout_p=self.dropout if self.training else 0.0
        )
        scale = weights.transpose(1, 2)[..., None] * self.n_heads  # (B, H, T, 1)
        if head_scale is not None:
            scale = scale * head_scale.view(1, self.n_heads, 1, 1)
        y = y * scale.to(y.dtype)
        return self.out(y.transpose(1, 2).reshape(b, t, d)), probs


class PoHBlock(nn.Module):
    """x + routed_attention(norm x), then x + ffn(norm x)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        d = cfg.d_model
        self.attn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.attn = RoutedAttention(d, cfg.n_heads, cfg.causal, cfg.dropout)
        self.ffn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.ffn = FeedForward(d, cfg.ffn_hidden_size(), cfg.ffn, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        weights: torch.Tensor,
        head_scale: torch.Tensor | None = None,
        inspect: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, probs = self.attn(self.attn_norm(x), rope, weights, head_scale, inspect)
        x = x + self.drop(a)
        return x + self.ffn(self.ffn_norm(x)), probs


class PoHBackbone(TransformerBackbone):
    """Token ids (B, T) -> logits (B, T, V) through R passes of routed blocks (see the module doc)."""

    def __init__(self, cfg: BackboneConfig):
        nn.Module.__init__(self)
        if cfg.memory is not None or cfg.act or cfg.micro_steps != 1:
            raise ValueError(
                "PoHBackbone takes no memory, ACT or micro_steps; its loop is recursion=R with "
                "hrm_period=T. Set backbone.memory=null, backbone.act=false, backbone.micro_steps=1."
            )
        self.cfg = cfg
        self.vocab_size, self.d_model = cfg.vocab_size, cfg.d_model
        self.n_layers, self.n_heads = cfg.n_layers, cfg.n_heads
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.max_seq_len, cfg.rope_base)
        self.blocks = nn.ModuleList(PoHBlock(cfg) for _ in range(cfg.n_layers))
        d_ctrl = max(cfg.d_model // 2, 1)
        self.routers = nn.ModuleList(
            HeadRouter(cfg.d_model, cfg.n_heads, d_ctrl, cfg.route_topk, cfg.route_temperature)
            for _ in range(cfg.n_layers)
        )
        self.maze_encoder = (
            MazeGridEncoder(cfg.d_model, *cfg.maze_shape) if cfg.maze_encoder else None
        )
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.head = Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.halting = None
        self.horizon_maps = nn.ModuleList(Linear(cfg.d_model, cfg.d_model) for _ in range(cfg.horizons - 1))
        self.drop = nn.Dropout(cfg.dropout)
        self.apply(self._init_weights)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self.register_buffer("route_steps", torch.zeros((), dtype=torch.long))  # training forwards so far
        self._last_metrics: dict[str, torch.Tensor] = {}

    def init_state(self, batch_size: int, device: torch.device | str) -> Any:
        return None

    def entropy_weight(self) -> torch.Tensor:
        """lambda now, a 0-d tensor (no host sync): ``route_entropy_weight``, annealed linearly to 0 over
        ``route_entropy_anneal_steps`` training forwards when that is set."""
        cfg = self.cfg
        weight = torch.full((), float(cfg.route_entropy_weight), device=self.route_steps.device)
        if cfg.route_entropy_anneal_steps > 0:
            done = self.route_steps.float() / cfg.route_entropy_anneal_steps
            weight = weight * (1.0 - done).clamp_min(0.0)
        return weight

    def forward(
        self,
        tokens: torch.Tensor,
        state: Any = None,
        *,
        head_scale: torch.Tensor | None = None,
        return_layers: bool = False,
        return_state: bool = True,
        inspect: bool = False,
    ) -> BackboneOutput:
        self._check_inputs(tokens, None, head_scale)
        if state is not None:
            raise ValueError("PoHBackbone reads whole sequences and keeps no state; pass state=None.")
        cfg = self.cfg
        rope = self.rope(0, tokens.shape[1])
        x0 = self.embed(tokens)
        if self.maze_encoder is not None:
            x0 = x0 + self.maze_encoder(tokens).to(x0.dtype)
        x0 = self.drop(x0)
        h = x0
        fast: list[torch.Tensor | None] = [None] * self.n_layers
        slow: list[torch.Tensor | None] = [None] * self.n_layers
        entropies: list[torch.Tensor] = []
        step_hiddens: list[torch.Tensor] = []
        layer_hiddens: list[torch.Tensor] = []
        attention: dict[str, InspectionMap] = {}
        routing: dict[str, InspectionMap] = {}
        for step in range(cfg.recursion):
            if step > 0:
                h = h + x0  # input injection before every refinement pass
            looking = inspect and step == cfg.recursion - 1
            layer_hiddens = []
            for i, (block, router) in enumerate(zip(self.blocks, self.routers, strict=True)):
                route = router(h, fast[i], slow[i], update_slow=step % cfg.hrm_period == 0)
                fast[i], slow[i] = route.fast, route.slow
                entropies.append(route.entropy.mean())
                scale = head_scale[i] if head_scale is not None else None
                h, probs = block(h, rope, route.weights, scale, looking)
                layer_hiddens.append(h)
                if looking:
                    attention[f"block{i}"] = InspectionMap(
                        probs, "query position", "key position", "head"
                    )
                    routing[f"block{i}.routing"] = InspectionMap(
                        route.weights.detach().float()[:, None], "token", "head"
                    )
            step_hiddens.append(h)
        entropy = torch.stack(entropies).mean()
        weight = self.entropy_weight()
        if self.training and torch.is_grad_enabled():
            self.route_steps += 1
        aux_loss = weight * entropy if cfg.route_entropy_weight > 0 else None
        metrics = {"poh/route_entropy": entropy.detach(), "poh/route_entropy_weight": weight}
        self._last_metrics = metrics
        final = step_hiddens[-1]
        logits, horizon_logits, deep_logits = self._output_heads(final, step_hiddens)
        inspection = Inspection(attention=attention, addressing=routing, memory={}) if inspect else None
        return BackboneOutput(
            logits=logits,
            hidden=final,
            layer_hiddens=tuple(layer_hiddens) if return_layers else None,
            state=None,
            aux_loss=aux_loss,
            deep_logits=deep_logits,
            horizon_logits=horizon_logits,
            metrics=metrics,
            inspection=inspection,
        )
