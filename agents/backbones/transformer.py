"""TransformerBackbone: pre-norm blocks (attention [+ memory] + feed-forward), ACT and recursive refinement.

One class covers every backbone of the family; ``BackboneConfig.memory`` picks the memory module that the
selected blocks carry. Streaming state is a dict ``{"pos": int, "layers": [...]}`` with one entry per
(refinement pass, block): the attention KV cache and the block's memory state, so that
``forward(chunk2, state=forward(chunk1).state)`` equals the matching slice of ``forward(chunk1 + chunk2)``.

``inspect=True`` reports the last pass of the block stack (recursion and ACT apply it several times, one
state entry per pass): its attention maps, memory addressing and memory snapshots (``base.Inspection``).
Earlier passes run exactly as without it.

With ACT (``act_skip``, the default) tokens that halted stop computing: later passes gather the running
positions and run attention queries, memory read-out and feed-forward for those alone
(``_skipping_passes``); ``act_skip=False`` runs every pass for every token and only reweights.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.utils.checkpoint
from torch import nn

from agents.backbones.active_rows import ActiveRows, gather_rows, scatter_rows
from agents.backbones.base import Backbone, BackboneOutput, Inspection, InspectionMap
from agents.backbones.config import BackboneConfig
from agents.backbones.halting import ActAccumulator, HaltingHead, HaltingResult
from agents.backbones.layers import FeedForward, RotaryEmbedding, SelfAttention, reserve_kv
from agents.backbones.linear import Linear
from agents.backbones.maze_encoder import MazeGridEncoder
from agents.backbones.memory import build_memory


class BlockOutput(NamedTuple):
    """A block's output (B, T, D), its streaming state (None without ``return_state``), the detached
    scalars its memory and gate measured, and with ``inspect`` its attention probabilities (B, heads, T, S)
    and its memory's addressing and snapshot (None otherwise)."""

    hidden: torch.Tensor
    state: dict[str, Any] | None
    metrics: dict[str, torch.Tensor]
    attention: torch.Tensor | None = None
    addressing: dict[str, InspectionMap] | None = None
    snapshot: dict[str, InspectionMap] | None = None


# The logit of an id outside a compact vocabulary: exp() is 0 against any real logit, and finite, so that
# entropies (p * log p) stay 0 rather than NaN; bf16 represents it.
UNUSED_LOGIT = -1.0e4


class PassRun(NamedTuple):
    """What the refinement passes produced: one hidden state (B, T, D) per refinement step, the last pass's
    per-block hidden states and outputs, the streaming state entries, the ACT result (None without ACT)
    and the share of (token, pass) pairs that were actually computed."""

    step_hiddens: list[torch.Tensor]
    layer_hiddens: list[torch.Tensor]
    last_pass: list[BlockOutput]
    new_layers: list[dict[str, Any] | None]
    halting: HaltingResult | None
    computed_fraction: float


class Block(nn.Module):
    """x + attention(norm x) [+ or gated with memory(norm x)], then x + ffn(norm x)."""

    def __init__(self, cfg: BackboneConfig, with_memory: bool):
        super().__init__()
        d = cfg.d_model
        self.attn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.attn = SelfAttention(d, cfg.n_heads, cfg.causal, cfg.dropout)
        self.memory = build_memory(cfg) if with_memory else None
        # Titans MAG: a learned per-channel gate between attention and the neural memory.
        self.gate = Linear(d, d) if with_memory and cfg.memory == "titans" else None
        self.ffn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.ffn = FeedForward(d, cfg.ffn_hidden_size(), cfg.ffn, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        head_scale: torch.Tensor | None,
        state: dict[str, Any] | None,
        return_state: bool = True,
        inspect: bool = False,
    ) -> BlockOutput:
        state = state or {}
        h = self.attn_norm(x)
        a, cache, probs = self.attn(h, rope, head_scale, state.get("kv"), inspect)
        new_state: dict[str, Any] = {"kv": cache}
        metrics: dict[str, torch.Tensor] = {}
        addressing = snapshot = None
        if self.memory is not None:
            memory = self.memory(h, state.get("memory"), return_state, inspect)
            new_state["memory"], metrics = memory.state, dict(memory.metrics)
            addressing, snapshot = memory.addressing, memory.snapshot
            m = memory.output
            if self.gate is not None:
                g = torch.sigmoid(self.gate(h))
                metrics["gate_attention"] = g.detach().float().mean()
                if addressing is not None:  # the share of attention (vs memory) per token and channel
                    share = g.detach().float()[:, None]
                    addressing["gate_attention"] = InspectionMap(share, "token", "channel")
                a = g * a + (1.0 - g) * m.to(a.dtype)
            else:
                a = a + m.to(a.dtype)
        x = x + self.drop(a)
        x = x + self.ffn(self.ffn_norm(x))
        return BlockOutput(x, new_state if return_state else None, metrics, probs, addressing, snapshot)


    def forward_active(
        self,
        x_rows: torch.Tensor,
        inputs: torch.Tensor,
        rows: ActiveRows,
        rope: tuple[torch.Tensor, torch.Tensor],
        head_scale: torch.Tensor | None,
        state: dict[str, Any] | None,
        return_state: bool = True,
    ) -> tuple[BlockOutput, torch.Tensor]:
        """The block for the running positions only (ACT skipping halted tokens).

        ``x_rows`` (B, A, D) holds the running positions' inputs, ``inputs`` (B, T, D) every position's
        input of the last pass that computed it. Halted positions keep serving keys, values and memory
        input from there; only the running ones get queries, the memory's read-out, the gate and the
        feed-forward. Returns the block output for the rows and the updated ``inputs``.
        """
        state = state or {}
        inputs = scatter_rows(inputs, rows, x_rows)
        h_full = self.attn_norm(inputs)
        h = self.attn_norm(x_rows)
        a, cache = self.attn.forward_rows(h, h_full, rope, rows, head_scale, state.get("kv"))
        new_state: dict[str, Any] = {"kv": cache}
        metrics: dict[str, torch.Tensor] = {}
        if self.memory is not None:
            memory = self.memory(h_full, state.get("memory"), return_state, False)
            new_state["memory"], metrics = memory.state, dict(memory.metrics)
            m = gather_rows(memory.output, rows)
            if self.gate is not None:
                g = torch.sigmoid(self.gate(h))
                metrics["gate_attention"] = g.detach().float().mean()
                a = g * a + (1.0 - g) * m.to(a.dtype)
            else:
                a = a + m.to(a.dtype)
        x = x_rows + self.drop(a)
        x = x + self.ffn(self.ffn_norm(x))
        return BlockOutput(x, new_state if return_state else None, metrics), inputs


class TransformerBackbone(Backbone):
    """Token ids (B, T) -> logits (B, T, V); decoder (causal) or encoder, with optional memory blocks."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        self.vocab_size, self.d_model = cfg.vocab_size, cfg.d_model
        self.n_layers, self.n_heads = cfg.n_layers, cfg.n_heads
        memory_layers = set(cfg.memory_layer_indices())
        rows = cfg.vocab_size if cfg.token_ids is None else len(cfg.token_ids)
        self.embed = nn.Embedding(rows, cfg.d_model)
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.max_seq_len, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg, i in memory_layers) for i in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.head = Linear(cfg.d_model, rows, bias=False)
        # Compact vocabulary: row r of embed / head is id token_ids[r]; compact_of maps ids to rows.
        ids = None if cfg.token_ids is None else torch.tensor(cfg.token_ids, dtype=torch.long)
        self.register_buffer("token_ids", ids, persistent=False)
        if ids is not None:
            compact = torch.full((cfg.vocab_size,), rows, dtype=torch.long)  # unlisted ids: out of range
            compact[ids] = torch.arange(rows)
            self.register_buffer("compact_of", compact, persistent=False)
        self.halting = HaltingHead(cfg.d_model, cfg.act_halt_init) if cfg.act else None
        # One learned map a further horizon, read out through the shared (tied) output head.
        self.horizon_maps = nn.ModuleList(Linear(cfg.d_model, cfg.d_model) for _ in range(cfg.horizons - 1))
        self.drop = nn.Dropout(cfg.dropout)
        self.maze_encoder = MazeGridEncoder(cfg.d_model, *cfg.maze_shape) if cfg.maze_encoder else None
        self.apply(self._init_weights)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight
        self._last_metrics: dict[str, torch.Tensor] = {}  # what metrics() reports: the last output's

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding) and not getattr(module, "_keep_init", False):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    @property
    def passes(self) -> int:
        """Applications of the block stack per forward: recursion * micro_steps."""
        return self.cfg.recursion * self.cfg.micro_steps

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.norm(hidden))
        ids = getattr(self, "token_ids", None)
        if ids is None:
            return logits
        full = logits.new_full((*logits.shape[:-1], self.vocab_size), UNUSED_LOGIT)
        return full.index_copy(-1, ids, logits)  # ids outside the compact vocabulary are never predicted

    def init_state(self, batch_size: int, device: torch.device | str) -> Any:
        if not self.cfg.causal or self.cfg.memory is None or self.maze_encoder is not None:
            return None
        layers = []
        for _ in range(self.passes):
            for block in self.blocks:
                entry: dict[str, Any] = {}
                if block.memory is not None:
                    entry["memory"] = block.memory.init_state(batch_size, device)
                layers.append(entry)
        return {"pos": 0, "layers": layers}

    def reserve_state(self, state: Any, length: int) -> Any:
        """``state`` with every block's KV cache reserved for ``length`` positions (``layers.reserve_kv``):
        later forwards write each token into it in place instead of copying the cache, so a streamed step
        reads the cache once; the returned state continues once (streaming), not branched."""
        if state is None:
            return None
        layers = [
            {**entry, "kv": reserve_kv(entry["kv"], length)} if entry and entry.get("kv") else entry
            for entry in state["layers"]
        ]
        return {**state, "layers": layers}

    def select_state_rows(self, state: Any, rows: torch.Tensor) -> Any:
        """``state`` for the batch rows ``rows`` only (every KV cache and memory state is batch-first), so a
        stream can drop rows it no longer needs; a reserved cache keeps its room."""

        def pick(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return value.index_select(0, rows)
            if isinstance(value, dict):
                return {key: pick(item) for key, item in value.items()}
            return value  # a position or a cached length: the same for every row

        return None if state is None else {**state, "layers": [pick(entry) for entry in state["layers"]]}

    def set_plasticity(self, alpha: float) -> None:
        """Set the Hebbian plasticity coefficient on every Hebbian memory (no-op without one)."""
        for module in self.modules():
            if module is not self and hasattr(module, "set_plasticity"):
                module.set_plasticity(alpha)

    def _check_inputs(self, tokens: torch.Tensor, state: Any, head_scale: torch.Tensor | None) -> None:
        if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"tokens must be an integer tensor of shape (batch, time), got {tuple(tokens.shape)} "
                f"{tokens.dtype}; convert with tokens.long()."
            )
        if state is not None and not self.cfg.causal:
            raise ValueError("The encoder (causal=False) sees the whole sequence at once; pass state=None.")
        if state is not None and (
            not isinstance(state, dict)
            or len(state.get("layers", ())) not in (0, self.passes * self.n_layers)
        ):
            raise ValueError(
                "state must be the .state of a previous forward of this backbone (or init_state(...)); "
                "it does not match this model's passes * n_layers."
            )
        if head_scale is not None and tuple(head_scale.shape) != (self.n_layers, self.n_heads):
            raise ValueError(
                f"head_scale must have shape (n_layers, n_heads) = {(self.n_layers, self.n_heads)}, "
                f"got {tuple(head_scale.shape)}."
            )

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
        self._check_inputs(tokens, state, head_scale)
        cfg = self.cfg
        return_state = return_state and cfg.causal  # an encoder has no state to continue
        if self.maze_encoder is not None and (state is not None or return_state):
            # the maze code comes from the whole prefix, which a later chunk no longer holds
            if state is not None:
                raise ValueError("backbone.maze_encoder reads whole sequences; pass state=None.")
            return_state = False
        pos = state["pos"] if state is not None else 0
        old_layers = state["layers"] if state is not None and state.get("layers") else None
        rope = self.rope(pos, tokens.shape[1])
        x0 = self.embed(tokens if self.token_ids is None else self.compact_of[tokens])
        if self.maze_encoder is not None:  # the seed's CNN code of the maze, added at every position
            x0 = x0 + self.maze_encoder(tokens).to(x0.dtype)
        x0 = self.drop(x0)
        pass_loop = self._skipping_passes if self._skips(inspect) else self._dense_passes
        run = pass_loop(x0, rope, head_scale, old_layers, return_state, inspect)
        step_hiddens, last_pass = run.step_hiddens, run.last_pass
        layer_hiddens = run.layer_hiddens
        new_layers = run.new_layers

        metrics: dict[str, torch.Tensor] = {}
        aux_loss = None
        final = step_hiddens[-1]
        if run.halting is not None:
            result = run.halting
            final = result.hidden
            ponder = result.ponder_cost.mean()
            aux_loss = cfg.ponder_weight * ponder
            metrics["act/ponder_cost"] = ponder.detach()
            metrics["act/steps_mean"] = result.steps.detach().mean()
            metrics["act/steps_max"] = result.steps.detach().amax()
            metrics["act/computed_fraction"] = torch.tensor(run.computed_fraction, device=ponder.device)
        metrics.update(self._memory_metrics(last_pass))
        self._last_metrics = metrics
        out_state = {"pos": pos + tokens.shape[1], "layers": new_layers} if return_state else None
        logits, horizon_logits, deep_logits = self._output_heads(final, step_hiddens)
        return BackboneOutput(
            logits=logits,
            hidden=final,
            layer_hiddens=tuple(layer_hiddens) if return_layers else None,
            state=out_state,
            aux_loss=aux_loss,
            deep_logits=deep_logits,
            horizon_logits=horizon_logits,
            metrics=metrics,
            inspection=self._inspection(last_pass) if inspect else None,
        )

    def _output_heads(
        self, final: torch.Tensor, step_hiddens: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
        """The logits of ``final``, its multi-horizon logits (B, T, K, V) when ``horizons`` > 1, and each
        refinement step's logits under ``deep_supervision`` (shared with the subclasses' forwards)."""
        logits = self.output_logits(final)
        horizon_logits = None
        if self.horizon_maps:
            further = [self.output_logits(final + project(final)) for project in self.horizon_maps]
            horizon_logits = torch.stack([logits, *further], dim=-2)
        deep_logits = None
        if self.cfg.deep_supervision and self.cfg.recursion > 1:
            deep_logits = tuple(self.output_logits(s) for s in step_hiddens)
        return logits, horizon_logits, deep_logits

    def _run(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)``, through activation checkpointing when training with ``gradient_checkpointing``."""
        if self.cfg.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def _skips(self, inspect: bool) -> bool:
        """Whether halted tokens stop computing: ACT with ``act_skip``, except under ``inspect`` (whose
        maps cover every token of the last pass, so it runs the dense schedule)."""
        return self.halting is not None and self.cfg.act_skip and not inspect

    def _dense_passes(
        self,
        x0: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        head_scale: torch.Tensor | None,
        old_layers: list[Any] | None,
        return_state: bool,
        inspect: bool,
    ) -> PassRun:
        """Every pass for every token (halting, if any, only reweights the steps' hidden states)."""
        h = x0
        new_layers: list[dict[str, Any] | None] = []
        step_hiddens: list[torch.Tensor] = []
        layer_hiddens: list[torch.Tensor] = []
        last_pass: list[BlockOutput] = []
        for pass_index in range(self.passes):
            if pass_index > 0:
                h = h + x0  # input injection: every refinement pass sees the tokens again (TRM)
            layer_hiddens, last_pass = [], []
            looking = inspect and pass_index == self.passes - 1
            for i, block in enumerate(self.blocks):
                slot = pass_index * self.n_layers + i
                scale = head_scale[i] if head_scale is not None else None
                old = old_layers[slot] if old_layers else None
                out = self._run(block, h, rope, scale, old, return_state, looking)
                h = out.hidden
                new_layers.append(out.state)
                layer_hiddens.append(h)
                last_pass.append(out)
            if (pass_index + 1) % self.cfg.micro_steps == 0:
                step_hiddens.append(h)
        halting = None
        if self.halting is not None:
            accumulator = ActAccumulator(self.cfg.act_threshold)
            for i, step_hidden in enumerate(step_hiddens):
                accumulator.update(step_hidden, self.halting(step_hidden), last=i == len(step_hiddens) - 1)
            halting = accumulator.result()
        return PassRun(step_hiddens, layer_hiddens, last_pass, new_layers, halting, 1.0)

    def _skipping_passes(
        self,
        x0: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        head_scale: torch.Tensor | None,
        old_layers: list[Any] | None,
        return_state: bool,
        inspect: bool,
    ) -> PassRun:
        """ACT that stops computing halted tokens: after each refinement step the halting rule decides which
        tokens go on, and later passes run on those alone (``Block.forward_active``).

        A halted token's output is its halting-weighted mix, exactly as in the dense schedule (its later
        steps weigh zero). Running tokens still attend to it (and the memory still reads it) through the
        inputs of its last computed pass: its keys and values freeze instead of being refined further. So a
        token whose own context kept running at least as long as it did gets the dense schedule's output;
        others see frozen neighbours. While every token runs, passes are the dense ones. Without
        ``return_state`` the loop ends once every token halted; with it, passes with nothing running still
        compute the keys, values and memory state that a continuation reads.
        """
        cfg = self.cfg
        b, t, _ = x0.shape
        n_steps = self.passes // cfg.micro_steps
        accumulator = ActAccumulator(cfg.act_threshold)
        inputs: list[torch.Tensor] = [x0] * self.n_layers  # each block's input of the last computed pass
        new_layers: list[dict[str, Any] | None] = []
        step_hiddens: list[torch.Tensor] = []
        layer_hiddens: list[torch.Tensor] = []
        last_pass: list[BlockOutput] = []
        rows: ActiveRows | None = None  # None: every token runs
        h = x0  # (B, T, D) while every token runs, else the running rows (B, A, D)
        full = x0  # every token's hidden state after the last step it computed
        computed = 0
        for pass_index in range(self.passes):
            if pass_index > 0:
                h = h + (x0 if rows is None else gather_rows(x0, rows))
            layer_hiddens, last_pass = [], []
            computed += b * t if rows is None else rows.count
            for i, block in enumerate(self.blocks):
                slot = pass_index * self.n_layers + i
                scale = head_scale[i] if head_scale is not None else None
                old = old_layers[slot] if old_layers else None
                if rows is None:
                    inputs[i] = h
                    out = self._run(block, h, rope, scale, old, return_state, False)
                else:
                    args = (h, inputs[i], rows, rope, scale, old, return_state)
                    out, inputs[i] = self._run(block.forward_active, *args)
                h = out.hidden
                new_layers.append(out.state)
                layer_hiddens.append(h)
                last_pass.append(out)
            if rows is not None:
                layer_hiddens = [*inputs[1:], scatter_rows(full, rows, h)]
            if (pass_index + 1) % cfg.micro_steps:
                continue
            full = h if rows is None else scatter_rows(full, rows, h)
            step_hiddens.append(full)
            step = len(step_hiddens) - 1
            running = accumulator.update(full, self.halting(full), last=step == n_steps - 1) > 0
            if step == n_steps - 1:
                break
            still = int(running.sum())  # one host sync decides: all run on, none do, or some (gathered)
            if still == b * t:
                continue
            if not return_state and still == 0:
                step_hiddens.extend([full] * (n_steps - len(step_hiddens)))  # frozen: weigh zero
                break
            rows = ActiveRows.from_mask(running)
            h = gather_rows(full, rows)
        fraction = computed / max(b * t * self.passes, 1)
        return PassRun(step_hiddens, layer_hiddens, last_pass, new_layers, accumulator.result(), fraction)

    def _memory_metrics(self, outputs: list[BlockOutput]) -> dict[str, torch.Tensor]:
        """Each scalar the memory blocks of the last pass measured, averaged over those blocks."""
        sums: dict[str, list[torch.Tensor]] = {}
        for out in outputs:
            for key, value in out.metrics.items():
                sums.setdefault(f"{self.cfg.memory}/{key}", []).append(value)
        return {key: torch.stack(values).mean() for key, values in sums.items()}

    @staticmethod
    def _inspection(outputs: list[BlockOutput]) -> Inspection:
        """The maps of one pass's blocks, named ``block<i>`` (attention) and ``block<i>.<name>``."""
        found = Inspection(attention={}, addressing={}, memory={})
        for i, out in enumerate(outputs):
            probs = out.attention
            found.attention[f"block{i}"] = InspectionMap(probs, "query position", "key position", "head")
            found.addressing.update({f"block{i}.{k}": v for k, v in (out.addressing or {}).items()})
            found.memory.update({f"block{i}.{k}": v for k, v in (out.snapshot or {}).items()})
        return found

    def metrics(self) -> dict[str, float]:
        """Scalars from the last forward; converting to floats syncs, so call this at logging time only."""
        return {key: float(value) for key, value in self._last_metrics.items()}
