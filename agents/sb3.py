"""Use any MindGym backbone as the feature extractor of Stable-Baselines3 PPO or sb3-contrib RecurrentPPO.

    from stable_baselines3 import PPO
    from agents.sb3 import backbone_policy_kwargs
    from envs.common.sb3 import SB3VecEnvAdapter
    from envs.recall.vector import RecallVectorEnv

    copy8 = [{"name": "copy8", "length": 8, "vocab": 8}]
    env = SB3VecEnvAdapter(RecallVectorEnv(num_envs=8, family="copy", device="cpu", levels=copy8))
    kwargs = backbone_policy_kwargs({"d_model": 64, "n_layers": 2, "n_heads": 2}, env.observation_space)
    PPO("MultiInputPolicy", env, policy_kwargs=kwargs, n_steps=64).learn(2_000)

The extractor reads sequence observations (dict ``tokens`` (T,) + ``length`` (1,), which SB3 hands over as
floats), runs the backbone and returns the normalised hidden state at position ``length - 1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from agents.backbones import BackboneConfig, build_backbone
from foundation.checkpoint import load_checkpoint


def _sequence_vocab(observation_space: gym.Space) -> int:
    """The number of token ids a sequence observation space holds; a clear error for any other space."""
    if not (
        isinstance(observation_space, gym.spaces.Dict)
        and {"tokens", "length"} <= set(observation_space.spaces)
        and isinstance(observation_space["tokens"], gym.spaces.Box)
    ):
        raise ValueError(
            f"BackboneFeaturesExtractor reads sequence observations (a Dict with 'tokens' and 'length'), "
            f"got {observation_space}; make the env with its sequence observation mode."
        )
    return int(observation_space["tokens"].high.max()) + 1


class BackboneFeaturesExtractor(BaseFeaturesExtractor):
    """SB3 features extractor: a MindGym backbone's normalised last-position hidden state (d_model features).

    config:     a BackboneConfig or a mapping of its fields; ``vocab_size`` defaults to the observation's.
    checkpoint: optional DualAgent checkpoint (or a file holding a backbone state_dict) to start from.
    freeze:     keep the backbone's weights fixed (only the policy and value heads learn).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        config: BackboneConfig | Mapping[str, Any] | None = None,
        checkpoint: str | Path | None = None,
        freeze: bool = False,
    ):
        vocab = _sequence_vocab(observation_space)
        if config is None:
            config = BackboneConfig(vocab_size=vocab)
        elif not isinstance(config, BackboneConfig):
            config = BackboneConfig(**{"vocab_size": vocab, **dict(config)})
        if config.vocab_size < vocab:
            raise ValueError(
                f"The backbone embeds {config.vocab_size} token ids but observations hold up to {vocab}; "
                f"set vocab_size >= {vocab} (or leave it out to take the observation's)."
            )
        super().__init__(observation_space, features_dim=config.d_model)
        self.config = config
        self.backbone = build_backbone(config)
        if checkpoint is not None:
            state = load_checkpoint(checkpoint)
            self.backbone.load_state_dict(state["agent"]["backbone"] if "agent" in state else state)
        if freeze:
            self.backbone.requires_grad_(False)
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = observations["tokens"].round().long()
        last = (observations["length"].reshape(-1).round().long() - 1).clamp(min=0)
        hidden = self.backbone(tokens, return_state=False).hidden
        return self.norm(hidden[torch.arange(tokens.shape[0], device=tokens.device), last].float())


def backbone_policy_kwargs(
    config: BackboneConfig | Mapping[str, Any] | None = None,
    observation_space: gym.Space | None = None,
    **extractor_kwargs: Any,
) -> dict[str, Any]:
    """``policy_kwargs`` for PPO / RecurrentPPO ``"MultiInputPolicy"`` / ``"MultiInputLstmPolicy"``.

    Passing ``observation_space`` checks it is a sequence space now rather than when the policy is built.
    """
    if observation_space is not None:
        _sequence_vocab(observation_space)
    if isinstance(config, BackboneConfig):
        config = asdict(config)
    return {
        "features_extractor_class": BackboneFeaturesExtractor,
        "features_extractor_kwargs": {"config": config, **extractor_kwargs},
    }
