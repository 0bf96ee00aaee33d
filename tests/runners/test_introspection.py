"""Looking inside: attention maps are causal distributions; memory contents reach TensorBoard as images."""

from __future__ import annotations

import torch

from agents.backbones import BackboneConfig, build_backbone
from runners.introspection import inspect_sample, log_model_internals
from runners.logging import RunLogger
from tests.runners.helpers import event_tags


def tiny(memory: str | None):
    cfg = BackboneConfig(vocab_size=40, d_model=32, n_layers=2, n_heads=2, memory=memory, memory_chunk=8)
    return build_backbone(cfg)


def test_attention_maps_are_causal_distributions_per_head():
    maps, memory = inspect_sample(tiny(None), torch.randint(0, 40, (3, 12)))
    assert len(maps) == 2 and maps[0].shape == (2, 12, 12) and memory == {}
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(2, 12))
    assert torch.all(maps[0].triu(diagonal=1) == 0)


def test_memory_contents_and_attention_are_logged_as_images(tmp_path):
    logger = RunLogger(tmp_path)
    count = log_model_internals(tiny("external"), torch.randint(0, 40, (1, 20)), logger, step=3)
    logger.close()
    images = set(event_tags(tmp_path)["images"])
    assert {"inspect/attention/call0", "inspect/attention/call1"} <= images
    assert {"inspect/memory/block0.memory", "inspect/memory/block0.usage"} <= images
    assert {"inspect/memory/block0.read_weights", "inspect/memory/block0.write_weights"} <= images
    assert count == len(images)


def test_external_memory_addressing_is_recorded_only_while_inspecting():
    model = tiny("external")
    tokens = torch.randint(0, 40, (2, 20))
    _, memory = inspect_sample(model, tokens)
    reads, writes = memory["block0.read_weights"], memory["block0.write_weights"]
    slots = model.cfg.memory_slots
    assert reads.shape == (20, slots) and writes.shape == (2 * model.cfg.memory_write_heads, slots)
    torch.testing.assert_close(reads.sum(-1), torch.ones(20))  # each token's read is a distribution
    assert bool((writes >= 0).all()) and bool((writes.sum(-1) <= 1 + 1e-5).all())
    model(tokens)
    assert all(not block.memory.record_addressing and not block.memory.addressing for block in model.blocks)


def test_disabled_logger_skips_the_work():
    assert (
        log_model_internals(tiny("hebbian"), torch.zeros(1, 8, dtype=torch.long), RunLogger("x", False), 0)
        == 0
    )
