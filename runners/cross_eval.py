"""Cross-family evaluation: a byte-level generation checkpoint scored on the recall family's needle task.

    python -m runners.evaluate checkpoint=outputs/agiformer on_task=needle            # 2,899-byte haystacks
    python -m runners.evaluate checkpoint=RUN on_task=needle 'needle_bytes=[1024,2899,8192]' episodes=128

A generation model reads and writes bytes, and the needle task's tokens are bytes (ids 0..255, padding
256 in both), so the model needs no change: its weights are loaded into the backbone its checkpoint's
config describes, the haystack with the needle sentence and the question goes in whole, and each key
digit is scored teacher-forced as the recall runner scores it (the arg-max over the ten digit bytes).
``accuracy`` is the share of key digits right, ``exact`` the share of keys found in full (the needle
test AGIFormer's write-up reports). ``needle_depths`` places the needle at those depths (0: first,
1: last); each (size, depth) cell gets ``episodes`` haystacks (64 by default).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from agents.backbones import Backbone, build_backbone
from envs.generation.tokens import VOCAB_SIZE as BYTE_VOCAB_SIZE
from envs.recall.evaluate import answer_scores
from envs.recall.needle import NeedleLevel
from envs.recall.task import RecallTask
from foundation import seed_everything
from foundation.checkpoint import load_checkpoint
from runners.config import SCHEMAS
from runners.ddp import command_line_device
from runners.report import format_table, write_report

TASKS = ("needle",)
DEFAULT_EPISODES = 64
SEED_NEEDLE_BYTES = 2899  # AGIFormer's needle check: the key "1453" in 2,899 bytes


def generation_backbone(state: dict[str, Any], path: Path, device: torch.device) -> Backbone:
    """The backbone of a generation checkpoint with its weights, in eval mode on ``device``."""
    runner = state.get("runner")
    if runner != "generation":
        raise ValueError(
            f"on_task=needle scores a byte-level generation checkpoint; {path} is a {runner!r} checkpoint. "
            "Drop on_task= to run its own family's evaluation."
        )
    cfg = OmegaConf.merge(OmegaConf.structured(SCHEMAS["generation_schema"]), state["config"])
    backbone_cfg = dataclasses.replace(OmegaConf.to_object(cfg.backbone), vocab_size=BYTE_VOCAB_SIZE)
    model = build_backbone(backbone_cfg)
    model.load_state_dict(state["experiment"]["agent"]["backbone"])  # bare keys, DDP runs' too
    return model.to(device).eval()


def needle_levels(sizes: Sequence[int], depths: Sequence[float]) -> list[NeedleLevel]:
    """One level per (haystack bytes, depth), named ``<bytes>B@<depth>``."""
    if not sizes or not depths:
        raise ValueError(
            "needle_bytes and needle_depths need at least one value each, e.g. needle_bytes=[2899]."
        )
    return [
        NeedleLevel(f"{int(size)}B@{float(depth):g}", int(size), float(depth))
        for size in sizes
        for depth in depths
    ]


def needle_scores(
    model: Callable[[torch.Tensor], Any],
    levels: Sequence[NeedleLevel],
    episodes: int,
    device: torch.device,
    seed: int = 0,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """Teacher-forced needle results of ``model`` (tokens -> logits or an output with .logits): one row per
    level with its haystack bytes, depth, key-digit accuracy and exact (whole key) rate."""
    task = RecallTask("needle", list(levels))
    generator = torch.Generator().manual_seed(seed)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    rows = []
    for index, level in enumerate(task.ladder):
        right = total = found = seen = 0
        while seen < episodes:
            batch = task.sample_batch(min(batch_size, episodes - seen), device, generator, level=index)
            with torch.no_grad(), autocast:
                r, t, f = answer_scores(model, batch, task.action_token_ids)
            right, total, found, seen = right + r, total + t, found + f, seen + batch.tokens.shape[0]
        rows.append(
            {
                "level": level.name,
                "context_bytes": level.context_bytes,
                "depth": level.depth,
                "accuracy": right / max(total, 1),
                "exact": found / max(seen, 1),
                "episodes": seen,
            }
        )
    return rows


def evaluate_on_task(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """``runners.evaluate`` with ``on_task=``: every checkpoint scored on that task; prints a table per run
    and writes ``report.json`` into ``out_dir``."""
    from runners.evaluate import checkpoint_paths, run_labels

    task = cfg.on_task
    if task not in TASKS:
        raise ValueError(
            f"on_task={task!r} is not a cross-family task; use one of {TASKS} (or drop on_task=)."
        )
    seed_everything(int(cfg.seed))
    device = command_line_device(cfg.device, key="device")
    paths = checkpoint_paths(cfg.checkpoint)
    labels = run_labels(paths, list(cfg.labels) if cfg.labels is not None else None)
    levels = needle_levels(list(cfg.needle_bytes), list(cfg.needle_depths))
    episodes = int(cfg.episodes) or DEFAULT_EPISODES
    runs: dict[str, Any] = {}
    lines = []
    for label, path in zip(labels, paths, strict=True):
        state = load_checkpoint(path)
        model = generation_backbone(state, path, device)
        rows = needle_scores(model, levels, episodes, device, int(cfg.seed))
        runs[label] = {"task": task, "checkpoint": str(path), "step": int(state["step"]), "levels": rows}
        table = [[r["level"], r["context_bytes"], r["depth"], r["accuracy"], r["exact"]] for r in rows]
        headers = ["level", "bytes", "depth", "digit accuracy", "exact"]
        lines += [f"{label} (generation on {task}, step {state['step']}, {path}):"]
        lines += [format_table(headers, table), ""]
    report = {"task": task, "runs": runs}
    write_report(report, out_dir / "report.json")
    print("\n".join(lines).rstrip())
    print(f"Wrote {out_dir / 'report.json'} for {len(runs)} run(s).")
    return report
