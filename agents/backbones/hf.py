"""HFBackbone: any causal language model from Hugging Face ``transformers`` as a MindGym backbone.

    BackboneConfig(kind="hf", hf_model="/models/gpt2", vocab_size=257)        # a local folder
    BackboneConfig(kind="hf", hf_model="gpt2", vocab_size=257)                # an id already in the cache

The model is loaded with ``local_files_only=True``: a local path or a model already in the Hugging Face
cache, never a download. MindGym's token ids map to the model's through ``hf_token_map``:

- ``bytes``: the byte-level vocabulary of GPT-2 style tokenizers (each byte 0..255 is one token, read
  from the tokenizer saved with the model; the generation family's PAD, 256, maps to the pad or
  end-of-text token), so a pre-trained LM reads and writes the generation family's byte tokens;
- ``identity``: MindGym id i is the model's id i (a model trained on MindGym's own ids).

Logits come back over MindGym's ``vocab_size`` ids (the model's logits gathered at the mapped ids), the
streaming state is the model's KV cache, ``return_layers`` gives every block's hidden state, and
``head_scale`` (the inference engine's per-head gates) multiplies each head's output before the attention's
output projection, as in MindGym's own attention (found by name for GPT-2, Llama-style, GPT-NeoX and OPT
blocks). ``inspect=True`` returns an empty inspection (the model's internals are its own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from agents.backbones.base import Backbone, BackboneOutput, Inspection
from agents.backbones.config import BackboneConfig

TOKEN_MAPS = ("bytes", "identity")
# Attention output projections by module-name suffix: GPT-2, Llama / Mistral / Qwen, GPT-NeoX, OPT / BART.
OUTPUT_PROJECTIONS = ("attn.c_proj", "self_attn.o_proj", "attention.dense", "self_attn.out_proj")


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise ImportError(
            "backbone.kind=hf needs the optional 'transformers' package: pip install 'mindgym[hf]'."
        ) from err
    return transformers


def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map, whose characters are its byte-level tokens."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def byte_token_ids(tokenizer: Any, vocab_size: int) -> list[int]:
    """The model id of each MindGym id below ``vocab_size``: bytes through the byte-level alphabet, the ids
    past 255 (padding) to the tokenizer's pad or end-of-text token."""
    alphabet = byte_level_alphabet()
    vocab = tokenizer.get_vocab()
    missing = [b for b in range(256) if alphabet[b] not in vocab]
    if missing:
        raise ValueError(
            f"The tokenizer has no byte-level token for {len(missing)} of the 256 bytes (e.g. byte "
            f"{missing[0]}), so it is not a GPT-2 style byte-level BPE; use backbone.hf_token_map=identity "
            "with a model trained on MindGym ids."
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return [vocab[alphabet[i]] if i < 256 else int(pad or 0) for i in range(vocab_size)]


class HFBackbone(Backbone):
    """A ``transformers`` causal LM behind the Backbone interface (see the module docstring)."""

    def __init__(self, model: nn.Module, token_ids: list[int], cfg: BackboneConfig | None = None):
        super().__init__()
        self.model = model
        text = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.d_model, self.n_layers = int(text.hidden_size), int(text.num_hidden_layers)
        self.n_heads = int(text.num_attention_heads)
        self.vocab_size = len(token_ids)
        model_vocab = int(model.get_output_embeddings().weight.shape[0])
        if max(token_ids) >= model_vocab:
            raise ValueError(
                f"The token map reaches model id {max(token_ids)} but the model has {model_vocab} tokens; "
                "use backbone.hf_token_map=bytes with its tokenizer, or a model with a larger vocabulary."
            )
        self.register_buffer("token_map", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        self.cfg = cfg
        self._projections = self._output_projections()
        # The KV cache's name in the model's forward: ``cache`` (recent transformers) or ``past_key_values``;
        # read once here, not on every forward of a rollout.
        parameters = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        self._head_scale: torch.Tensor | None = None
        self._last_metrics: dict[str, torch.Tensor] = {}

    @classmethod
    def from_config(cls, cfg: BackboneConfig) -> HFBackbone:
        """Load ``cfg.hf_model`` from a local path or the local cache (never downloading)."""
        transformers = _transformers()
        if not cfg.hf_model:
            raise ValueError("backbone.kind=hf needs backbone.hf_model=<local folder or cached model id>.")
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(cfg.hf_model, local_files_only=True)
        except OSError as err:
            raise ValueError(
                f"backbone.hf_model={cfg.hf_model!r} is neither a local folder nor a model in the Hugging "
                "Face cache (nothing is downloaded); save one with model.save_pretrained(folder) and pass "
                f"that folder. ({err})"
            ) from err
        if cfg.hf_token_map == "identity":
            token_ids = list(range(cfg.vocab_size))
        else:
            tokenizer = transformers.AutoTokenizer.from_pretrained(cfg.hf_model, local_files_only=True)
            token_ids = byte_token_ids(tokenizer, cfg.vocab_size)
        backbone = cls(model, token_ids)
        shape = {"d_model": backbone.d_model, "n_layers": backbone.n_layers, "n_heads": backbone.n_heads}
        with contextlib.suppress(ValueError):  # MindGym's own shape rules may not fit every model
            cfg = dataclasses.replace(cfg, **shape)
        backbone.cfg = cfg
        return backbone

    def _output_projections(self) -> list[nn.Module] | None:
        """Each block's attention output projection, in block order (None where the names do not match)."""
        found = [
            module
            for name, module in self.model.named_modules()
            if isinstance(module, nn.Module) and name.endswith(OUTPUT_PROJECTIONS)
        ]
        return found if len(found) == self.n_layers else None

    @contextlib.contextmanager
    def _scaled_heads(self, head_scale: torch.Tensor | None) -> Iterator[None]:
        """Multiply each head's slice of the output projections' input by ``head_scale`` (L, H)."""
        if head_scale is None:
            yield
            return
        if self._projections is None:
            raise ValueError(
                "head_scale needs the attention output projections, which this model's module names do not "
                f"show (looked for {OUTPUT_PROJECTIONS}); run the engine without head gates."
            )
        if tuple(head_scale.shape) != (self.n_layers, self.n_heads):
            raise ValueError(
                f"head_scale must have shape (n_layers, n_heads) = {(self.n_layers, self.n_heads)}, "
                f"got {tuple(head_scale.shape)}."
            )

        def hook(layer: int):
            def scale(_module: nn.Module, args: tuple) -> tuple:
                x = args[0]
                heads = x.unflatten(-1, (self.n_heads, -1)) * head_scale[layer].to(x.dtype)[:, None]
                return (heads.flatten(-2), *args[1:])

            return scale

        handles = [p.register_forward_pre_hook(hook(i)) for i, p in enumerate(self._projections)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

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
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (batch, time), got {tuple(tokens.shape)}.")
        ids = self.token_map[tokens.long()]
        with self._scaled_heads(head_scale):
            out = self.model(
                input_ids=ids,
                use_cache=return_state,
                output_hidden_states=True,
                return_dict=True,
                **{self._cache_argument: state},
            )
        logits = out.logits.index_select(-1, self.token_map)
        cache = out.get(self._cache_argument)
        return BackboneOutput(
            logits=logits,
            hidden=out.hidden_states[-1],
            layer_hiddens=tuple(out.hidden_states[1:]) if return_layers else None,
            state=cache if return_state else None,
            inspection=Inspection(attention={}, addressing={}, memory={}) if inspect else None,
        )

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The model's output head (after its final norm, which the last hidden state already had)."""
        return self.model.get_output_embeddings()(hidden).index_select(-1, self.token_map)
