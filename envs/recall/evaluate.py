"""Grid evaluation of a model on recall tasks, written as JSON plus a PNG heatmap.

    from envs.recall.evaluate import evaluate_grid, ladder_grid, needle_grid
    report = evaluate_grid(model, needle_grid(context_bytes=[1024, 4096], depths=[0.0, 0.5, 1.0]))
    report.save("outputs/eval", stem="needle")     # needle.json, needle.png
    report = evaluate_grid(model, ladder_grid(task))   # the axes of the task's own ladder

``model`` is a callable from tokens (B, T) int64 to logits (B, T, V) — or anything whose output has
``.logits``, such as a MindGym Backbone. Scores are teacher-forced on batches from ``sample_batch``: a
model's answer at each answer position is the arg-max of ``logits[..., action_token_ids]``, as in the env.
``accuracy`` is the fraction of answer tokens right, ``exact_match`` the fraction of sequences with all
of them right. Cells that are not a valid level (e.g. more pairs than the length holds) are left empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from envs.recall.associative import AssociativeLevel
from envs.recall.needle import NeedleLevel
from envs.recall.render import grid_context, heatmap_figure
from envs.recall.task import RecallTask
from foundation.device import resolve_device

METRICS = ("accuracy", "exact_match")


@dataclass(frozen=True)
class Grid:
    """Levels of one family laid out on two axes; ``levels[r][c]`` is None where a cell is invalid."""

    family: str
    row_name: str
    row_values: list[Any]
    col_name: str
    col_values: list[Any]
    levels: list[list[Any]]


def needle_grid(
    context_bytes: Sequence[int] = (1024, 4096, 16384, 65536),
    depths: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    key_digits: int = 4,
    filler: str = "corpus",
) -> Grid:
    """Needle levels over depth (rows) x context length in bytes (columns)."""
    levels = [
        [
            NeedleLevel(f"ctx{n}-d{d:g}", n, depth=d, key_digits=key_digits, filler=filler)
            for n in context_bytes
        ]
        for d in depths
    ]
    return Grid("needle", "depth", list(depths), "context_bytes", list(context_bytes), levels)


def associative_grid(
    pairs: Sequence[int] = (4, 8, 16, 32, 64),
    lengths: Sequence[int] = (64, 128, 256, 512),
    vocab: int = 256,
    queries: int | None = None,
) -> Grid:
    """Associative-recall levels over key-value pairs (rows) x sequence length (columns).

    Every pair is queried unless ``queries`` is given; a cell whose length cannot hold its pairs and
    queries is left empty.
    """
    levels: list[list[Any]] = []
    for n in pairs:
        asked = n if queries is None else min(queries, n)
        row = [
            AssociativeLevel(f"kv{n}-t{t}", n, vocab, asked, t) if t >= 2 * (n + asked) else None
            for t in lengths
        ]
        levels.append(row)
    return Grid("associative", "pairs", list(pairs), "length", list(lengths), levels)


GridAxes = tuple[str, list[Any], str, list[Any], Callable[[Any, Any], Any]]


def _copy_axes(task: RecallTask, ladder: list[Any]) -> GridAxes:
    def make(n: int, v: int) -> Any:
        return task.level_cls(f"len{n}-v{v}", n, v)

    return "length", sorted({lv.length for lv in ladder}), "vocab", sorted({lv.vocab for lv in ladder}), make


def _repeat_copy_axes(task: RecallTask, ladder: list[Any]) -> GridAxes:
    vocab = max(lv.vocab for lv in ladder)

    def make(n: int, r: int) -> Any:
        return task.level_cls(f"len{n}-v{vocab}-x{r}", n, vocab, r)

    return (
        "length",
        sorted({lv.length for lv in ladder}),
        "repeats",
        sorted({lv.repeats for lv in ladder}),
        make,
    )


def _associative_axes(task: RecallTask, ladder: list[Any]) -> GridAxes:
    vocab = max(lv.vocab for lv in ladder)

    def make(n: int, t: int) -> Any:  # every pair queried; a length too short for them is no level
        return task.level_cls(f"kv{n}-t{t}", n, vocab, n, t) if t >= 4 * n else None

    return "pairs", sorted({lv.pairs for lv in ladder}), "length", sorted({lv.length for lv in ladder}), make


def _needle_axes(task: RecallTask, ladder: list[Any]) -> GridAxes:
    first = ladder[0]

    def make(d: float, n: int) -> Any:
        return task.level_cls(f"ctx{n}-d{d:g}", n, depth=d, key_digits=first.key_digits, filler=first.filler)

    return (
        "depth",
        [0.0, 0.25, 0.5, 0.75, 1.0],
        "context_bytes",
        sorted({lv.context_bytes for lv in ladder}),
        make,
    )


LADDER_AXES: dict[str, Callable[[RecallTask, list[Any]], GridAxes]] = {
    "copy": _copy_axes,
    "repeat_copy": _repeat_copy_axes,
    "associative": _associative_axes,
    "needle": _needle_axes,
}
"""Each family's two grid axes over a ladder: (row name, rows, column name, columns, level of a cell)."""


def ladder_grid(task: RecallTask) -> Grid:
    """A 2-D grid over the task's own ladder axes (length x vocabulary for copy, length x repeats for
    repeat-copy, pairs x length for associative recall, depth x context for the needle).

    Values come from the ladder, so the grid measures what was trained and its neighbours; a cell that
    is no valid level or does not fit the task's capacity (its spaces) is left empty.
    """
    row_name, rows, col_name, cols, make = LADDER_AXES[task.family.name](task, list(task.ladder))
    levels = [[_fitting(task, make(r, c)) for c in cols] for r in rows]
    return Grid(task.family.name, row_name, rows, col_name, cols, levels)


def _fitting(task: RecallTask, level: Any) -> Any:
    """``level`` if the task can play it, else None (an empty cell)."""
    if level is None:
        return None
    try:
        task.check_fits(level)
    except ValueError:
        return None
    return level


@dataclass(frozen=True)
class GridReport:
    """Scores of one model on a grid; None marks an empty cell."""

    family: str
    row_name: str
    row_values: list[Any]
    col_name: str
    col_values: list[Any]
    accuracy: list[list[float | None]]
    exact_match: list[list[float | None]]
    sequences_per_cell: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(
        self, directory: str | Path, stem: str = "recall_grid", metric: str = "exact_match"
    ) -> tuple[Path, Path]:
        """Write ``<stem>.json`` (every score) and ``<stem>.png`` (a heatmap of ``metric``)."""
        if metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}; use one of {list(METRICS)}.")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, png_path = directory / f"{stem}.json", directory / f"{stem}.png"
        json_path.write_text(json.dumps(self.to_dict(), indent=2))
        heatmap_figure(self, metric=metric).savefig(png_path, dpi=100)
        return json_path, png_path


def model_logits(model: Callable[[torch.Tensor], Any], tokens: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) of ``model`` on ``tokens``: a plain callable's output or its ``.logits``."""
    output = model(tokens)
    logits = getattr(output, "logits", output)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or logits.shape[:2] != tokens.shape:
        raise ValueError(
            "The model must map tokens (B, T) to logits (B, T, V) or to an output with .logits; "
            f"got {type(output).__name__} for tokens of shape {tuple(tokens.shape)}."
        )
    return logits


def answer_scores(
    model: Callable[[torch.Tensor], Any], batch: Any, action_token_ids: Sequence[int]
) -> tuple[int, int, int]:
    """(answer tokens right, answer tokens, sequences fully right) of ``model`` on a supervised batch."""
    logits = model_logits(model, batch.tokens)
    if logits.shape[-1] <= max(action_token_ids):
        raise ValueError(
            f"The model's logits have {logits.shape[-1]} entries but answers use token id "
            f"{max(action_token_ids)}; build the model with the task's vocab_size."
        )
    ids = torch.as_tensor(action_token_ids, device=logits.device)
    chosen = ids[logits[..., ids].argmax(dim=-1)]
    right = (chosen == batch.targets.to(logits.device)) & batch.loss_mask.to(logits.device)
    mask = batch.loss_mask.to(logits.device)
    all_right = (right.sum(1) == mask.sum(1)).sum()
    return int(right.sum()), int(mask.sum()), int(all_right)


def evaluate_grid(
    model: Callable[[torch.Tensor], Any],
    grid: Grid,
    batch_size: int = 16,
    num_batches: int = 1,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> GridReport:
    """Teacher-forced accuracy and exact match of ``model`` in every cell of ``grid``.

    ``device`` defaults to the model's parameters' device (CPU for a plain callable). Every cell sees
    ``batch_size * num_batches`` sequences drawn from a generator seeded with ``seed``.
    """
    if batch_size < 1 or num_batches < 1:
        raise ValueError(f"batch_size and num_batches must be >= 1, got {batch_size} and {num_batches}.")
    if device is None:
        first = next(model.parameters(), None) if isinstance(model, nn.Module) else None
        device = first.device if first is not None else torch.device("cpu")
    device = resolve_device(device)
    cells = [level for row in grid.levels for level in row if level is not None]
    if not cells:
        raise ValueError("The grid has no valid cell; check its axes (e.g. lengths too short for the pairs).")
    task = RecallTask(grid.family, levels=cells)
    generator = torch.Generator().manual_seed(seed)
    scores: dict[str, list[list[float | None]]] = {m: [] for m in METRICS}
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.inference_mode():
            for row in grid.levels:
                for metric in METRICS:
                    scores[metric].append([])
                for level in row:
                    accuracy, exact = _score_cell(
                        model, task, level, batch_size, num_batches, device, generator
                    )
                    scores["accuracy"][-1].append(accuracy)
                    scores["exact_match"][-1].append(exact)
    finally:
        if was_training:
            model.train()
    return GridReport(
        grid.family,
        grid.row_name,
        grid.row_values,
        grid.col_name,
        grid.col_values,
        scores["accuracy"],
        scores["exact_match"],
        batch_size * num_batches,
    )


def evaluate_ladder_grid(
    model: Callable[[torch.Tensor], Any],
    task: RecallTask,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> tuple[GridReport, dict[str, Any]]:
    """``model`` scored over the grid of ``task``'s own ladder axes (:func:`ladder_grid`), with the grid's
    context for the heatmap (:func:`envs.recall.render.grid_context`): what a run logs and reports."""
    grid = ladder_grid(task)
    return evaluate_grid(model, grid, batch_size, 1, device, seed), grid_context(task, grid)


def _score_cell(
    model, task, level, batch_size, num_batches, device, generator
) -> tuple[float | None, float | None]:
    if level is None:
        return None, None
    right = total = exact = 0
    for _ in range(num_batches):
        batch = task.sample_batch(batch_size, device=device, generator=generator, level=level)
        r, t, e = answer_scores(model, batch, task.action_token_ids)
        right, total, exact = right + r, total + t, exact + e
    return right / total, exact / (batch_size * num_batches)
