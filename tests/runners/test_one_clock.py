"""One curriculum, one clock: staged boundaries fire at fraction x trainer.steps whatever the RL share."""

from __future__ import annotations

import pytest

from runners import generation
from runners.app import execute
from runners.experiment import AgentExperiment
from tests.runners.helpers import compose_config

AGIFORMER_ON_CPU = [
    "preset=agiformer",
    "backbone.d_model=32",
    "backbone.n_layers=1",
    "backbone.n_heads=2",
    "backbone.memory_chunk=8",
    "backbone.max_seq_len=64",
    "trainer.steps=20",
    "trainer.eval_every=20",
    "trainer.checkpoint_every=20",
    "trainer.log_every=5",
    "trainer.inspect=false",
]


@pytest.mark.parametrize(("rl_envs", "rl_steps"), [(4, 1), (16, 3)])
def test_agiformer_plasticity_stages_fire_at_their_fraction_of_the_steps(
    tmp_path, monkeypatch, rl_envs, rl_steps
):
    """15% and 40% of 20 steps are steps 3 and 8, with RL steps interleaved and any number of RL envs."""
    fired: list[tuple[int, dict[str, float]]] = []
    apply_knobs = AgentExperiment.apply_knobs

    def recording(self: AgentExperiment, knobs: dict[str, float]) -> None:
        clock = self.curriculum.steps if hasattr(self, "curriculum") else 0  # the first stage fires at build
        fired.append((clock, dict(knobs)))
        apply_knobs(self, knobs)

    monkeypatch.setattr(AgentExperiment, "apply_knobs", recording)
    overrides = [
        *AGIFORMER_ON_CPU,
        f"engine.rl_envs={rl_envs}",
        f"engine.interleave.rl_steps={rl_steps}",
        "engine.interleave.supervised_steps=1",
        "engine.interleave.warmup_supervised=1",
    ]
    cfg = compose_config("generation", overrides)
    report = execute(cfg, "generation", generation.build_experiment, tmp_path)
    assert fired == [(0, {"plasticity": 0.1}), (3, {"plasticity": 0.5}), (8, {"plasticity": 0.99})]
    assert report["curriculum"]["steps"] == 20
    assert report["curriculum"]["knobs"] == {"plasticity": 0.99}
