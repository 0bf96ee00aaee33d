"""``engine.feature_version`` picks the conditioned engine's feature set from the command line, so a text
engine trained on the v1 features (before v2's running repetition features) can still be built and resumed."""

from __future__ import annotations

import pytest
import torch

from agents.engine_features import for_family
from runners.ddp import DistInfo
from runners.experiment import build_agent
from runners.generation import build_task
from tests.runners.helpers import compose_config

CPU = DistInfo(device=torch.device("cpu"))


def _engine(overrides: list[str]):
    cfg = compose_config("generation", ["engine.conditioned=true", *overrides])
    return build_agent(cfg, build_task(cfg), CPU, family="generation").engine


def test_the_latest_feature_set_by_default_and_version_1_on_request():
    assert _engine([]).n_features == for_family("generation").size == 7
    assert _engine(["engine.feature_version=1"]).n_features == for_family("generation", 1).size == 2


def test_a_v1_engine_loads_into_a_run_built_with_feature_version_1_only():
    v1_state = _engine(["engine.feature_version=1"]).state_dict()
    _engine(["engine.feature_version=1"]).load_state_dict(v1_state)
    with pytest.raises(ValueError, match="2 features"):
        _engine([]).load_state_dict(v1_state)


def test_an_unknown_version_names_the_known_ones():
    with pytest.raises(ValueError, match=r"its versions are \[1, 2\]"):
        _engine(["engine.feature_version=3"])
