"""The inference engine: learned decoding (how to answer) on top of a backbone's logits (what to answer).

Raw parameters are mapped to the decoding knobs through smooth constraints:

    temperature          min_temperature + softplus(raw)     (floored, > 0)
    top-p                sigmoid(raw)                         (0, 1)
    repetition penalty   1 + softplus(raw)                    (> 1)
    layer weights        softmax(raw) over layers             mix every block's hidden state before the head
    head weights         2 * sigmoid(raw), (n_layers, n_heads) scale each attention head's output

Every step from raw parameters to the action distribution is differentiable, so the log-probability of a
sampled action carries gradient to all of them (REINFORCE / PPO). Top-p's hard cut-off has no gradient in
p; the engine uses a smooth gate instead: token i, whose more-probable tokens hold cumulative mass c_i,
keeps ``sigmoid((p - c_i) / top_p_sharpness)`` of its probability. ``top_p_mode="hard"`` gives the exact
nucleus cut-off for evaluation and fixed baselines.

The repetition penalty divides the probability of every action token already present in the observed
context (prompt and what has been generated so far) by the penalty, i.e. subtracts ``log(penalty)`` from
its logit - the shift-invariant form of CTRL's penalty. A conditioned engine adds a small head that reads
the (mixed) hidden state and predicts per-step offsets (bounded by ``condition_range`` through a tanh) to
the raw temperature and top-p, as adaptive-decoding work does; with ``n_features > 0`` the head also reads
per-step features of the env's state (:mod:`agents.engine_features`: the maze's legal moves, the position
in a recall answer, how much of a text continuation is written), passed as ``features`` (B, n_features).
``feature_offsets=True`` adds a linear map from the features straight to the two offsets (zero at the
start, learned at the knobs' rate): the head's MLP reads the features through one LayerNorm with the
hidden state and learns at a tenth of the rate, so a rule as plain as "loosen while the text loops" is slow
for it to find, and a faster MLP is noisy (docs/generation.md, "Conditioned engine").

Defaults are (close to) plain decoding: temperature 1, top-p 0.99, penalty 1.05, the last layer weighted
0.9 and every head at 1. The penalty starts at 1.05 at the least (a request for less starts there): nearer
1, softplus's gradient vanishes and the penalty could not be learned. ``mix_layers=False`` /
``scale_heads=False`` use the backbone's own logits exactly; for exactly fixed decodings (penalty 1
included) call :func:`decode_logits` directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical

from agents.backbones.base import Backbone, BackboneOutput

TOP_P_MODES = ("smooth", "hard")


def inverse_softplus(value: float) -> float:
    """The x with softplus(x) == value (value > 0)."""
    return value + math.log(-math.expm1(-value))


def context_presence(tokens: torch.Tensor, length: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, vocab) float mask: 1 where a token id occurs among the first ``length`` tokens of its row."""
    length = length.reshape(-1, 1)
    valid = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0) < length
    present = torch.zeros(tokens.shape[0], vocab_size, device=tokens.device)
    return present.scatter_reduce(1, tokens.long(), valid.float(), reduce="amax")


def decode_logits(
    logits: torch.Tensor,
    present: torch.Tensor,
    temperature: torch.Tensor | float,
    top_p: torch.Tensor | float,
    repetition_penalty: torch.Tensor | float,
    top_p_sharpness: float | None,
) -> torch.Tensor:
    """Apply repetition penalty, temperature and top-p to ``logits`` (B, A); knobs: floats, scalars or (B,).

    ``top_p_sharpness=None`` uses the exact nucleus cut-off; a positive value the smooth gate.
    """
    temperature, top_p, penalty = (_column(x, logits) for x in (temperature, top_p, repetition_penalty))
    scaled = (logits - present * torch.log(penalty)) / temperature
    sorted_logits, order = scaled.sort(dim=-1, descending=True)
    sorted_probs = sorted_logits.softmax(dim=-1)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    if top_p_sharpness is None:
        keep_sorted = mass_before < top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        return scaled.masked_fill(~keep, float("-inf"))
    log_gate_sorted = F.logsigmoid((top_p - mass_before) / top_p_sharpness)
    return scaled + torch.zeros_like(scaled).scatter(-1, order, log_gate_sorted)


def _column(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value.reshape(-1, 1) if value.ndim == 1 else value


def sample_actions(dist: Categorical, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one action per row with Gumbel-max, from ``generator`` (no host sync, reproducible streams)."""
    uniform = torch.rand(dist.logits.shape, generator=generator, device=dist.logits.device)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
    return (dist.logits.detach() + gumbel).argmax(dim=-1)


def _entropy(weights: torch.Tensor) -> torch.Tensor:
    weights = weights / weights.sum(dim=-1, keepdim=True)
    return -(weights * weights.clamp_min(1e-12).log()).sum(dim=-1)


@dataclass
class EngineConfig:
    """The engine's decoding knobs and their starting values: the one place they are defined (the
    runners' Hydra config extends this dataclass). See the module docstring for what each one does."""

    conditioned: bool = False
    condition_hidden: int = 32
    condition_range: float = 2.0
    feature_offsets: bool = False  # a conditioned engine with features maps them linearly to its offsets
    temperature: float = 1.0
    top_p: float = 0.99
    repetition_penalty: float = 1.05  # the engine's floor: nearer 1 its gradient is too small to learn
    last_layer_weight: float = 0.9
    min_temperature: float = 0.05
    top_p_sharpness: float = 0.02
    top_p_mode: str = "smooth"
    mix_layers: bool = True
    scale_heads: bool = True

    def __post_init__(self) -> None:
        if not self.temperature > self.min_temperature > 0:
            raise ValueError(
                f"temperature ({self.temperature}) must exceed min_temperature ({self.min_temperature}) > 0."
            )
        if not 0.0 < self.top_p < 1.0:
            raise ValueError(f"top_p must lie in (0, 1) (a sigmoid), got {self.top_p}; 0.999 means 'no cut'.")
        if self.repetition_penalty < 1.0:
            raise ValueError(f"repetition_penalty must be >= 1, got {self.repetition_penalty}.")
        if not 0.0 < self.last_layer_weight < 1.0:
            raise ValueError(f"last_layer_weight must lie in (0, 1), got {self.last_layer_weight}.")
        if self.top_p_sharpness <= 0:
            raise ValueError(f"top_p_sharpness must be > 0, got {self.top_p_sharpness}.")
        if self.top_p_mode not in TOP_P_MODES:
            raise ValueError(f"Unknown top_p_mode {self.top_p_mode!r}; use one of {TOP_P_MODES}.")

    @classmethod
    def knob_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


class InferenceEngine(nn.Module):
    """Learned decoding over a backbone: temperature, top-p, repetition penalty, layer and head weights.

    Knobs come from ``config`` (an :class:`EngineConfig`), with keyword overrides:
    ``InferenceEngine.for_backbone(backbone, ids, temperature=0.4)``.
    """

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        vocab_size: int,
        action_token_ids: Sequence[int],
        config: EngineConfig | None = None,
        *,
        d_model: int | None = None,
        n_features: int = 0,
        **knobs: Any,
    ):
        super().__init__()
        unknown = sorted(set(knobs) - set(EngineConfig.knob_names()))
        if unknown:
            raise TypeError(f"Unknown engine knob(s) {unknown}; the knobs are {EngineConfig.knob_names()}.")
        config = replace(config or EngineConfig(), **knobs)
        self.config = config
        self._check_args(n_layers, n_heads, vocab_size, action_token_ids, config.conditioned, d_model)
        self.n_layers, self.n_heads, self.vocab_size = n_layers, n_heads, vocab_size
        self.n_actions = len(action_token_ids)
        self.min_temperature = float(config.min_temperature)
        self.top_p_sharpness = float(config.top_p_sharpness)
        self.top_p_mode = config.top_p_mode
        self.mix_layers = bool(config.mix_layers and n_layers > 1)
        self.scale_heads = bool(config.scale_heads)
        self.conditioned = bool(config.conditioned)
        self.condition_range = float(config.condition_range)
        if n_features < 0:
            raise ValueError(f"n_features must be >= 0, got {n_features}.")
        self.n_features = int(n_features) if self.conditioned else 0
        self.register_buffer("action_token_ids", torch.as_tensor(list(action_token_ids), dtype=torch.long))

        layer_init = torch.zeros(n_layers)
        if n_layers > 1:
            share = config.last_layer_weight
            layer_init[-1] = math.log(share * (n_layers - 1) / (1.0 - share))
        raw_temperature = inverse_softplus(config.temperature - config.min_temperature)
        self.raw_temperature = nn.Parameter(torch.tensor(raw_temperature))
        self.raw_top_p = nn.Parameter(torch.logit(torch.tensor(float(config.top_p))))
        raw_penalty = inverse_softplus(max(config.repetition_penalty - 1.0, 0.05))
        self.raw_penalty = nn.Parameter(torch.tensor(raw_penalty))
        self.raw_layer_weights = nn.Parameter(layer_init)
        self.raw_head_weights = nn.Parameter(torch.zeros(n_layers, n_heads))
        for name in ("raw_temperature", "raw_top_p", "raw_penalty", "raw_layer_weights", "raw_head_weights"):
            self.register_buffer(f"default_{name}", getattr(self, name).detach().clone(), persistent=False)
        if self.conditioned:
            out = nn.Linear(config.condition_hidden, 2)
            nn.init.normal_(out.weight, std=0.01)
            nn.init.zeros_(out.bias)
            self.condition = nn.Sequential(
                nn.LayerNorm(d_model + self.n_features),
                nn.Linear(d_model + self.n_features, config.condition_hidden),
                nn.GELU(),
                out,
            )
        if config.feature_offsets and not (self.conditioned and self.n_features):
            raise ValueError(
                "feature_offsets=True maps the per-step features to the conditioned offsets: build the "
                "engine with conditioned=True and n_features > 0 (for_family(<family>).size), or leave it "
                "False."
            )
        self.feature_offsets = None
        if config.feature_offsets:
            self.feature_offsets = nn.Linear(self.n_features, 2)
            nn.init.zeros_(self.feature_offsets.weight)
            nn.init.zeros_(self.feature_offsets.bias)
        self._last: dict[str, torch.Tensor] = {}

    @staticmethod
    def _check_args(n_layers, n_heads, vocab_size, action_token_ids, conditioned, d_model) -> None:
        for name, value in (("n_layers", n_layers), ("n_heads", n_heads), ("vocab_size", vocab_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        ids = list(action_token_ids)
        if len(ids) < 2 or min(ids) < 0 or max(ids) >= vocab_size:
            raise ValueError(
                f"action_token_ids must list >= 2 token ids in [0, {vocab_size - 1}]; "
                "pass task.action_token_ids."
            )
        if conditioned and not (isinstance(d_model, int) and d_model > 0):
            raise ValueError("A conditioned engine reads the hidden state: pass d_model=backbone.d_model.")

    @classmethod
    def for_backbone(
        cls,
        backbone: Backbone,
        action_token_ids: Sequence[int],
        config: EngineConfig | None = None,
        n_features: int = 0,
        **knobs: Any,
    ) -> InferenceEngine:
        """An engine sized for ``backbone`` acting on ``action_token_ids`` (``task.action_token_ids``);
        ``n_features``: the width of the per-step features a conditioned engine reads (0: none)."""
        return cls(
            backbone.n_layers,
            backbone.n_heads,
            backbone.vocab_size,
            action_token_ids,
            config,
            d_model=backbone.d_model,
            n_features=n_features,
            **knobs,
        )

    # ------------------------------------------------------------------ constrained values
    @property
    def top_p_mode(self) -> str:
        return self._top_p_mode

    @top_p_mode.setter
    def top_p_mode(self, mode: str) -> None:
        if mode not in TOP_P_MODES:
            raise ValueError(f"Unknown top_p_mode {mode!r}; use one of {TOP_P_MODES}.")
        self._top_p_mode = mode

    def temperature(self) -> torch.Tensor:
        return self.min_temperature + F.softplus(self.raw_temperature)

    def top_p(self) -> torch.Tensor:
        return torch.sigmoid(self.raw_top_p)

    def repetition_penalty(self) -> torch.Tensor:
        return 1.0 + F.softplus(self.raw_penalty)

    def layer_weights(self) -> torch.Tensor:
        return self.raw_layer_weights.softmax(dim=0)

    def head_scale(self) -> torch.Tensor | None:
        """(n_layers, n_heads) head multipliers for ``Backbone.forward(head_scale=...)``; None if unused."""
        return 2.0 * torch.sigmoid(self.raw_head_weights) if self.scale_heads else None

    # ------------------------------------------------------------------ policy
    def forward(
        self,
        backbone: Backbone,
        tokens: torch.Tensor,
        length: torch.Tensor,
        state: Any = None,
        features: torch.Tensor | None = None,
    ) -> tuple[Categorical, BackboneOutput]:
        """Run ``backbone`` with this engine's head weights and return the action distribution and output."""
        output = self.read(backbone, tokens, state)
        dist = self.distribution(output, tokens, length, backbone.output_logits, features=features)
        return dist, output

    def read(self, backbone: Backbone, tokens: torch.Tensor, state: Any = None) -> BackboneOutput:
        """The backbone's output on ``tokens`` (after ``state``) with this engine's head weights and, when
        it mixes layers, every layer's hidden state."""
        return backbone(tokens, state, head_scale=self.head_scale(), return_layers=self.mix_layers)

    def distribution(
        self,
        output: BackboneOutput,
        tokens: torch.Tensor,
        length: torch.Tensor,
        output_logits: Callable[[torch.Tensor], torch.Tensor],
        positions: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> Categorical:
        """The distribution over actions for each row of the context ``tokens`` (B, T) / ``length``.

        The hidden state is read at ``positions`` of ``output`` (default ``length - 1``: the output covers
        the whole context; a streamed output of one new token reads position 0). The repetition penalty
        always looks at the whole context. ``features`` (B, n_features): what a conditioned engine built
        with ``n_features`` reads beside the hidden state (ignored by other engines).
        """
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        last = (length.reshape(-1) - 1 if positions is None else positions.reshape(-1)).clamp(min=0)
        if self.mix_layers:
            if output.layer_hiddens is None or len(output.layer_hiddens) != self.n_layers:
                raise ValueError(
                    f"The engine mixes {self.n_layers} layer hidden states; run the backbone with "
                    "return_layers=True (engine(backbone, tokens, length) does) "
                    "or build it with mix_layers=False."
                )
            stacked = torch.stack([h[rows, last] for h in output.layer_hiddens], dim=1).float()
            hidden = (self.layer_weights()[None, :, None] * stacked).sum(dim=1)
            logits = output_logits(hidden)
        else:
            hidden = output.hidden[rows, last].float()
            logits = output.logits[rows, last]
        logits = logits.float()[:, self.action_token_ids]
        present = context_presence(tokens, length, self.vocab_size)[:, self.action_token_ids]
        raw_t, raw_p = self.raw_temperature, self.raw_top_p
        if self.conditioned:
            raw_offsets = self.condition(self._head_input(hidden, features))
            if self.feature_offsets is not None:
                raw_offsets = raw_offsets + self.feature_offsets(features.to(hidden.device, hidden.dtype))
            offsets = self.condition_range * torch.tanh(raw_offsets / self.condition_range)
            raw_t, raw_p = raw_t + offsets[:, 0], raw_p + offsets[:, 1]
        temperature = self.min_temperature + F.softplus(raw_t)
        top_p = torch.sigmoid(raw_p)
        sharpness = self.top_p_sharpness if self.top_p_mode == "smooth" else None
        decoded = decode_logits(logits, present, temperature, top_p, self.repetition_penalty(), sharpness)
        self._last = {"temperature": temperature.detach(), "top_p": top_p.detach()}
        return Categorical(logits=decoded)

    def _head_input(self, hidden: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """The conditioned head's input: the hidden state, then the per-step features when it reads any."""
        if not self.n_features:
            return hidden
        if features is None or features.shape != (hidden.shape[0], self.n_features):
            got = None if features is None else tuple(features.shape)
            raise ValueError(
                f"This conditioned engine reads {self.n_features} features a step, got {got}; pass "
                "features=agents.engine_features.for_family(<family>) to the policy / DualAgent, or build "
                "the engine with n_features=0."
            )
        return torch.cat([hidden, features.to(hidden.device, hidden.dtype)], dim=-1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Refuse, naming both widths, a conditioned head that reads another number of features (an engine
        trained on an earlier feature set, :mod:`agents.engine_features`), before torch's shape error."""
        saved = state_dict.get(f"{prefix}condition.0.weight")
        if self.conditioned and saved is not None:
            d_model = self.condition[0].normalized_shape[0] - self.n_features
            if saved.shape[0] != d_model + self.n_features:
                raise ValueError(
                    f"The checkpoint's conditioned engine reads {saved.shape[0] - d_model} features a step, "
                    f"this one {self.n_features}: it was trained on another feature set. Build the engine "
                    "with n_features=for_family(<family>, version=<its version>).size and pass those "
                    "features (the text family's v1 read 2, v2 reads 7; docs/agents.md)."
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def param_groups(self, lr: float, condition_lr_scale: float = 0.1) -> list[dict[str, Any]]:
        """Optimiser groups: the decoding knobs (and ``feature_offsets``, a knob per feature) at ``lr``, the
        conditioned head at ``lr * condition_lr_scale`` (its many weights would otherwise move the per-step
        offsets far faster than the knobs)."""
        knobs = [p for name, p in self.named_parameters() if not name.startswith("condition.")]
        groups = [{"params": knobs, "lr": lr}]
        if self.conditioned:
            groups.append({"params": list(self.condition.parameters()), "lr": lr * condition_lr_scale})
        return groups

    def default_pull(self) -> torch.Tensor:
        """Squared distance of the raw parameters (and conditioned offsets' weights) from their defaults."""
        pull = sum(
            (getattr(self, name) - getattr(self, f"default_{name}")).pow(2).sum()
            for name in (
                "raw_temperature",
                "raw_top_p",
                "raw_penalty",
                "raw_layer_weights",
                "raw_head_weights",
            )
        )
        if self.conditioned:
            pull = pull + self.condition[-1].weight.pow(2).sum()
        if self.feature_offsets is not None:
            pull = pull + self.feature_offsets.weight.pow(2).sum() + self.feature_offsets.bias.pow(2).sum()
        return pull

    @torch.no_grad()
    def metrics(self) -> dict[str, float]:
        """Engine values for logging; a conditioned engine adds batch means of its last per-step values."""
        values = {
            "engine/temperature": float(self.temperature()),
            "engine/top_p": float(self.top_p()),
            "engine/repetition_penalty": float(self.repetition_penalty()),
            "engine/layer_weight_entropy": float(_entropy(self.layer_weights())),
            "engine/last_layer_weight": float(self.layer_weights()[-1]),
            "engine/head_weight_entropy": float(_entropy(2.0 * torch.sigmoid(self.raw_head_weights)).mean()),
        }
        if self.conditioned and self._last:
            values["engine/step_temperature_mean"] = float(self._last["temperature"].mean())
            values["engine/step_top_p_mean"] = float(self._last["top_p"].mean())
        return values
