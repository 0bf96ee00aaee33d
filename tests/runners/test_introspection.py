"""Looking inside: the drawer asks the backbone for its maps and logs one labelled image per map."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

import runners.introspection as introspection
from agents.backbones import BackboneConfig, build_backbone
from runners.introspection import inspect_sample, inspection_figures, log_model_internals
from runners.logging import RunLogger
from tests.runners.helpers import event_tags

VARIANTS = {
    "transformer": {},
    "hebbian": {"memory": "hebbian"},
    "external": {"memory": "external"},
    "titans": {"memory": "titans"},
    "act_recursion": {"recursion": 2, "act": True},
}
# The images each variant's memory adds per block, beside the attention map.
MEMORY_TAGS = {
    "transformer": [],
    "hebbian": ["addressing/{}.decay", "memory/{}.fast_weights"],
    "external": [
        "addressing/{}.read_weights",
        "addressing/{}.write_weights",
        "memory/{}.slots",
        "memory/{}.usage",
    ],
    "titans": [
        "addressing/{}.learning_rate",
        "addressing/{}.momentum",
        "addressing/{}.forgetting",
        "addressing/{}.gate_attention",
        "memory/{}.w1",
        "memory/{}.w2",
    ],
    "act_recursion": [],
}


def tiny(name: str):
    cfg = BackboneConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=2, memory_chunk=8, **VARIANTS[name])
    return build_backbone(cfg)


def test_inspect_sample_looks_at_one_sample_in_eval_mode_and_restores_the_mode():
    model = tiny("external").train()
    inspection = inspect_sample(model, torch.randint(0, 40, (3, 12)))
    assert model.training
    maps = inspection.attention["block1"].values
    assert maps.shape == (1, 2, 12, 12)
    torch.testing.assert_close(maps.sum(-1), torch.ones(1, 2, 12))
    assert inspection.addressing["block0.read_weights"].values.shape[0] == 1


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_is_logged_as_one_image_per_map(tmp_path, name):
    logger = RunLogger(tmp_path)
    count = log_model_internals(tiny(name), torch.randint(0, 40, (1, 20)), logger, step=3)
    logger.close()
    images = set(event_tags(tmp_path)["images"])
    expected = {f"inspect/attention/block{i}" for i in range(2)}
    expected |= {f"inspect/{tag.format(f'block{i}')}" for i in range(2) for tag in MEMORY_TAGS[name]}
    assert images == expected and count == len(images)


def test_every_panel_has_axis_labels_a_colour_bar_and_a_title():
    inspection = inspect_sample(tiny("external"), torch.randint(0, 40, (1, 20)))
    figures = dict(inspection_figures(inspection, "one 3x3 sample"))
    assert all(figure.get_suptitle().endswith(", one 3x3 sample") for figure in figures.values())
    attention = figures["attention/block0"]
    heads = [ax for ax in attention.axes if ax.get_title().startswith("head")]
    assert [ax.get_title() for ax in heads] == ["head 0", "head 1"]
    assert all((ax.get_xlabel(), ax.get_ylabel()) == ("key position", "query position") for ax in heads)
    assert len(attention.axes) == 2 * len(heads)  # one colour bar beside each head
    assert "block 0" in attention.get_suptitle()
    reads = [ax for ax in figures["addressing/block0.read_weights"].axes if ax.get_images()]
    assert all((ax.get_xlabel(), ax.get_ylabel()) == ("slot", "token") for ax in reads)
    bars = [ax for ax in figures["addressing/block0.read_weights"].axes if not ax.get_images()]
    assert bars and all(ax.get_ylabel() == "read weights" for ax in bars)  # what each colour bar shows
    bars = [ax for ax in attention.axes if not ax.get_title().startswith("head")]
    assert all(ax.get_ylabel().startswith("probability") for ax in bars)
    for figure in figures.values():
        drawn = [ax for ax in figure.axes if ax.get_images()]
        assert drawn and len(figure.axes) >= 2 * len(drawn)
        assert figure.get_suptitle()
    plt.close("all")


def test_the_drawer_imports_only_the_public_backbone_api():
    tree = ast.parse(Path(introspection.__file__).read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in modules if m and m.startswith("agents.") and m != "agents.backbones"}


def test_disabled_logger_skips_the_work():
    assert (
        log_model_internals(tiny("hebbian"), torch.zeros(1, 8, dtype=torch.long), RunLogger("x", False), 0)
        == 0
    )
