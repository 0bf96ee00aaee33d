"""BackboneConfig: every knob of a MindGym backbone as plain fields, so Hydra can build it from YAML.

Validation happens at construction: a value outside its accepted set raises a ValueError that names the
field, the accepted values and the fix, instead of failing deep inside a kernel later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FFN_KINDS = ("swiglu", "gelu")
# Titans' largest inner-loop learning rate. Its chunk steps are normalised (titans.step_scales), so any
# rate up to this one keeps the memory finite, measured with every gate saturated (docs/reliability.md).
MAX_NEURAL_MEMORY_LR = 1.0
MEMORY_KINDS = (None, "hebbian", "external", "titans")
BACKBONE_KINDS = ("transformer", "poh", "hf")  # poh: per-token head routing in a two-timescale loop (poh.py)


@dataclass
class BackboneConfig:
    """Shape, memory and computation schedule of a backbone (see docs/backbones.md for each field)."""

    vocab_size: int = 256
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ffn: str = "swiglu"
    ffn_hidden: int | None = None  # None: 4*d for gelu, ~8/3*d for swiglu (same parameter count)
    max_seq_len: int = 4096  # rotary tables are precomputed up to here; longer inputs still work
    dropout: float = 0.0
    tie_embeddings: bool = True
    causal: bool = True  # False: the bidirectional encoder (masked multi-target prediction)
    rope_base: float = 10000.0
    norm_eps: float = 1e-6
    # Memory: which module, which blocks get it ("all", "none", a list of block indices or "0,2,5").
    memory: str | None = None
    memory_layers: Any = "all"
    memory_chunk: int = 64  # chunk length of the parallel (training) form of every memory
    plasticity: float = 0.99  # Hebbian: alpha multiplying the learned decay; a curriculum moves it
    hebbian_decay_init: float = 0.99  # Hebbian: initial sigmoid(decay) before alpha
    memory_heads: int | None = None  # Hebbian / Titans heads; None: n_heads
    memory_slots: int = 64  # external: number of memory rows
    memory_slot_width: int | None = None  # external: row width; None: d_model // n_heads
    memory_read_heads: int = 4  # external
    memory_write_heads: int = 2  # external: writes per chunk
    neural_memory_expansion: int = 2  # Titans: hidden width of the memory MLP / head width
    neural_memory_lr: float = 0.1  # Titans: largest inner-loop learning rate theta
    # Adaptive computation and recursive refinement.
    act: bool = False
    act_threshold: float = 0.99
    ponder_weight: float = 0.01
    # Halted tokens stop computing (their keys and values freeze at their last pass); False: every pass
    # runs for every token and halting only reweights the steps (the schedule before issue 21).
    act_skip: bool = True
    act_halt_init: float = 0.2689414213699951  # sigmoid(-1): each token's halting probability at init
    recursion: int = 1  # R: the block stack is applied R times with shared weights
    micro_steps: int = 1  # stack applications inside each refinement step
    deep_supervision: bool = False  # return logits after every refinement step
    horizons: int = 1  # K > 1: also predict the tokens 2..K steps ahead (MLM-U style multi-horizon targets)
    # Training recomputes each block's activations in the backward instead of storing them (less memory,
    # one more forward per block); outputs and gradients are the same.
    gradient_checkpointing: bool = False
    # Compact vocabulary: embed and predict only ``token_ids`` (sorted ids below vocab_size; logits of the
    # others are UNUSED_LOGIT). ``compact_vocab`` asks the runner to fill token_ids from the task.
    compact_vocab: bool = False
    token_ids: Any = None
    # kind="hf": a Hugging Face causal LM (agents.backbones.hf) from a local folder or the local cache, and
    # how MindGym ids map to its ids ("bytes": GPT-2 style byte-level tokens; "identity": id i is id i).
    hf_model: str | None = None
    hf_token_map: str = "bytes"
    # Which backbone: the transformer family above, or "poh" (pointer over heads inside an HRM loop, whose
    # R refinement passes are ``recursion``; its high-level controller updates every ``hrm_period`` passes).
    kind: str = "transformer"
    hrm_period: int = 4  # T: passes between updates of the slow high-level controller state
    route_topk: int = 0  # 0: softmax over all heads per token; k: only each token's top-k heads, renormalised
    route_temperature: float = 1.0
    route_entropy_weight: float = 0.0  # lambda of lambda * routing entropy added to the loss
    route_entropy_anneal_steps: int = 0  # > 0: lambda falls linearly to 0 over this many training forwards
    # CNN maze encoder: a (2h+1) x (2w+1) wall image of the maze prefix, Conv2d 1->16->32, pooled, added
    # to every token's embedding. Needs ``maze_shape`` [h, w] (the runner sets it from a one-size ladder).
    maze_encoder: bool = False
    maze_shape: Any = None
    # Width matched to a parameter budget (agents.backbones.parity): an int count, or a preset name that
    # the runner turns into that preset's count; depth and heads stay.
    parity_with: Any = None

    def __post_init__(self) -> None:
        positive = ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len", "memory_chunk")
        positive += ("memory_slots", "memory_read_heads", "memory_write_heads", "neural_memory_expansion")
        positive += ("recursion", "micro_steps", "horizons", "hrm_period")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BackboneConfig.{name} must be a positive int, got {value!r}.")
        if self.ffn not in FFN_KINDS:
            raise ValueError(f"BackboneConfig.ffn={self.ffn!r} is unknown; use one of {FFN_KINDS}.")
        if self.kind not in BACKBONE_KINDS:
            raise ValueError(f"BackboneConfig.kind={self.kind!r} is unknown; use one of {BACKBONE_KINDS}.")
        self._check_poh()
        if self.memory == "none":
            self.memory = None
        if self.memory not in MEMORY_KINDS:
            raise ValueError(
                f"BackboneConfig.memory={self.memory!r} is unknown; use one of {MEMORY_KINDS} "
                "(None or 'none' for a plain transformer)."
            )
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"BackboneConfig: d_model={self.d_model} must split into n_heads={self.n_heads} "
                "heads of even width (rotary positions rotate pairs); "
                "pick d_model as a multiple of 2 * n_heads."
            )
        mem_heads = self.memory_heads or self.n_heads
        if self.d_model % mem_heads:
            raise ValueError(f"BackboneConfig.memory_heads={mem_heads} must divide d_model={self.d_model}.")
        for name in ("dropout", "plasticity", "hebbian_decay_init", "act_threshold", "neural_memory_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"BackboneConfig.{name} must be a number, got {value!r}.")
        for name, low in (("rope_base", 1.0), ("norm_eps", 0.0), ("ponder_weight", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= low:
                raise ValueError(f"BackboneConfig.{name} must be a number >= {low}, got {value!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"BackboneConfig.dropout must lie in [0, 1), got {self.dropout}.")
        if isinstance(self.act_halt_init, bool) or not isinstance(self.act_halt_init, int | float) or not (
            0.0 < self.act_halt_init < 1.0
        ):
            raise ValueError(
                f"BackboneConfig.act_halt_init must lie in (0, 1), got {self.act_halt_init!r}; "
                "e.g. backbone.act_halt_init=0.5."
            )
        for name in ("plasticity", "hebbian_decay_init", "act_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"BackboneConfig.{name} must lie in (0, 1], got {value}.")
        if not 0.0 < self.neural_memory_lr <= MAX_NEURAL_MEMORY_LR:
            raise ValueError(
                f"BackboneConfig.neural_memory_lr must lie in (0, {MAX_NEURAL_MEMORY_LR}], got "
                f"{self.neural_memory_lr}: the range measured stable (finite logits over 1K-32K tokens with "
                "every memory gate saturated; docs/reliability.md). Pick a value in it, e.g. the default 0.1."
            )
        if self.memory is not None and not self.causal:
            raise ValueError(
                "BackboneConfig: memory modules are causal recurrences; set causal=True or memory=None."
            )
        if self.act and self.recursion < 2:
            raise ValueError(
                "BackboneConfig: act=True halts over refinement steps, so it needs recursion >= 2 "
                f"(got recursion={self.recursion}); raise recursion or set act=False."
            )
        self.memory_layer_indices()  # validates memory_layers
        self._check_token_ids()
        if self.hf_token_map not in ("bytes", "identity"):
            raise ValueError(
                f"BackboneConfig.hf_token_map={self.hf_token_map!r} is unknown; use 'bytes' or 'identity'."
            )
        if self.kind == "hf" and not self.hf_model:
            raise ValueError("BackboneConfig: kind='hf' needs hf_model=<local folder or cached model id>.")

    def _check_poh(self) -> None:
        """Routing and maze-encoder fields: in range, and only where the backbone uses them."""
        if isinstance(self.route_topk, bool) or not isinstance(self.route_topk, int):
            raise ValueError(f"BackboneConfig.route_topk must be an int, got {self.route_topk!r}.")
        if not 0 <= self.route_topk <= self.n_heads:
            raise ValueError(
                f"BackboneConfig.route_topk={self.route_topk} must lie in [0, n_heads={self.n_heads}] "
                "(0 routes over every head); e.g. backbone.route_topk=2."
            )
        for name in ("route_temperature", "route_entropy_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"BackboneConfig.{name} must be a number >= 0, got {value!r}.")
        if self.route_temperature <= 0:
            raise ValueError(f"BackboneConfig.route_temperature must be > 0, got {self.route_temperature}.")
        steps = self.route_entropy_anneal_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"BackboneConfig.route_entropy_anneal_steps must be an int >= 0, got {steps!r}.")
        if self.kind == "poh" and (self.memory not in (None, "none") or self.act):
            raise ValueError(
                "BackboneConfig: kind='poh' routes heads in its own loop and takes no memory or ACT; "
                "set backbone.memory=null and backbone.act=false, or backbone.kind=transformer."
            )
        if self.maze_encoder:
            shape = self.maze_shape
            if shape is None or len(shape) != 2 or not all(isinstance(v, int) and v > 0 for v in shape):
                raise ValueError(
                    f"BackboneConfig.maze_encoder needs maze_shape=[height, width] of the mazes, got "
                    f"{shape!r}; the maze runner sets it from a ladder whose levels share one size."
                )
        if self.parity_with is not None and (
            isinstance(self.parity_with, bool) or not isinstance(self.parity_with, int | str)
        ):
            raise ValueError(
                "BackboneConfig.parity_with must be a parameter count or a preset name, got "
                f"{self.parity_with!r}."
            )

    def _check_token_ids(self) -> None:
        """``token_ids``: None, or distinct ints below vocab_size (stored sorted), transformer kind only."""
        if self.token_ids is None:
            return
        ids = list(self.token_ids)
        valid = (not isinstance(i, bool) and isinstance(i, int) and 0 <= i < self.vocab_size for i in ids)
        if not ids or not all(valid):
            raise ValueError(
                f"BackboneConfig.token_ids must be distinct ints in [0, vocab_size={self.vocab_size}), got "
                f"{self.token_ids!r}; leave it null and set backbone.compact_vocab=true to take the task's."
            )
        if len(set(ids)) != len(ids):
            raise ValueError(f"BackboneConfig.token_ids repeats an id: {self.token_ids!r}.")
        if self.kind != "transformer":
            raise ValueError(
                f"BackboneConfig.token_ids (a compact vocabulary) needs kind=transformer, got {self.kind!r}."
            )
        self.token_ids = sorted(ids)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def memory_layer_indices(self) -> tuple[int, ...]:
        """The block indices that carry the memory module (empty without memory)."""
        if self.memory is None:
            return ()
        spec = self.memory_layers
        if isinstance(spec, str):
            if spec == "all":
                return tuple(range(self.n_layers))
            if spec == "none" or spec == "":
                return ()
            try:
                spec = [int(part) for part in spec.split(",")]
            except ValueError as err:
                raise ValueError(
                    f"BackboneConfig.memory_layers={self.memory_layers!r}: use 'all', 'none', a list of "
                    "block indices or a comma-separated string such as '0,2'."
                ) from err
        try:
            indices = sorted({int(i) for i in spec})
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"BackboneConfig.memory_layers={spec!r}: use 'all', 'none' or a list of block indices."
            ) from err
        bad = [i for i in indices if not 0 <= i < self.n_layers]
        if bad:
            raise ValueError(
                f"BackboneConfig.memory_layers has {bad}, outside blocks 0..{self.n_layers - 1}; "
                "pick indices below n_layers."
            )
        return tuple(indices)

    def ffn_hidden_size(self) -> int:
        """Hidden width of the feed-forward: explicit, or sized so SwiGLU and GELU cost the same."""
        if self.ffn_hidden is not None:
            return self.ffn_hidden
        if self.ffn == "gelu":
            return 4 * self.d_model
        multiple = 64 if self.d_model >= 256 else 8
        return -(-(8 * self.d_model // 3) // multiple) * multiple
