"""Train a backbone on a recall family (copy, repeat_copy, associative, needle): ``python -m runners.recall``.

The default is a small CPU run on copy (length 1 to 16) that shows the loss falling and the exact-match
rate rising within a few minutes. Evaluation is teacher-forced on fresh sequences of each level (the
answer is the arg-max over the answer tokens, as in the env); the exact-match rate per level moves the
curriculum, and a heatmap over the family's grid (length x vocabulary for copy, pairs x length for
associative recall, depth x context for the needle) goes to TensorBoard and the report.

    python -m runners.recall task.family=associative task.levels=null
    python -m runners.recall preset=bwr_dnc
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from envs.recall.evaluate import GridReport, answer_scores, evaluate_ladder_grid
from envs.recall.render import heatmap_figure
from envs.recall.task import RecallTask
from envs.recall.vector import RecallVectorEnv
from foundation import make_generator
from runners.app import hydra_main
from runners.ddp import DistInfo
from runners.experiment import AgentExperiment, LevelScore
from runners.logging import RunLogger
from runners.report import plot_bars, save_figure

RUNNER = "recall"


class RecallExperiment(AgentExperiment):
    """Recall-specific half: vector env, teacher-forced per-level evaluation, grid heatmaps."""

    runner = RUNNER
    headline = "exact_match"

    def __init__(self, cfg: DictConfig, dist: DistInfo):
        family = str(cfg.task.family)
        spec = OmegaConf.to_container(cfg.task.levels) if cfg.task.levels is not None else None
        task = RecallTask.from_spec(family, spec, level=int(cfg.task.start_level))
        super().__init__(cfg, dist, task)
        self.last_grid: GridReport | None = None
        self.last_grid_context: dict[str, Any] | None = None

    def make_vector_env(self, num_envs: int, seed: int) -> RecallVectorEnv:
        return RecallVectorEnv(num_envs, task=self.task, device=self.device, obs_mode="sequence", seed=seed)

    def score_level(self, index: int, seed: int, batch_size: int | None = None) -> LevelScore:
        """Teacher-forced answer accuracy and exact-match rate on fresh sequences at ladder ``index``."""
        batch_size = batch_size or self.eval_share(int(self.cfg.task.eval_batch))
        self.agent.backbone.eval()
        generator = make_generator(seed, "eval", "cpu")
        batch = self.task.sample_batch(batch_size, self.device, generator, index)
        right, total, exact = answer_scores(self.agent.backbone, batch, self.task.action_token_ids)
        means = {
            "accuracy": torch.tensor(right / max(total, 1)),
            "exact_match": torch.tensor(exact / batch_size),
        }
        return LevelScore(means, torch.arange(batch_size, device=self.device) < exact)

    def eval_extras(self, step: int, logger: RunLogger) -> dict[str, float]:
        """The exact-match heatmap over the family's grid (rank 0 only: it is for the eyes)."""
        if logger.enabled:
            self.last_grid, self.last_grid_context = evaluate_ladder_grid(
                self.agent.backbone, self.task, 16, self.device, step
            )
            logger.figure("eval/heatmap", heatmap_figure(self.last_grid, self.last_grid_context), step)
        return {}

    def full_evaluation(self, episodes: int | None = None) -> dict[str, Any]:
        """Accuracy and exact match on every ladder level, and the family grid."""
        batch_size = episodes or int(self.cfg.task.eval_batch)
        results: dict[str, Any] = {"accuracy": {}, "exact_match": {}}
        for index, level in enumerate(self.task.ladder):
            means = self.score_level(index, self.seed + index, batch_size).means
            results["accuracy"][level.name] = float(means["accuracy"])
            results["exact_match"][level.name] = float(means["exact_match"])
        report, results["grid_context"] = evaluate_ladder_grid(
            self.agent.backbone, self.task, batch_size, self.device, self.seed
        )
        results["grid"] = report.to_dict()
        return results

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        if self.last_grid is not None:
            out["grid"] = self.last_grid.to_dict()
        return out

    def plot_title(self) -> str:
        return f"{self.runner} ({self.task.family.name}): {self.headline} per level"

    def plots(self, out_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        """Best and final exact match per level, and the last evaluation's grid heatmap."""
        paths = super().plots(out_dir, history)
        if self.last_grid is not None:
            figure = heatmap_figure(self.last_grid, self.last_grid_context)
            paths.append(save_figure(figure, out_dir / "recall_heatmap.png"))
        return paths

    @classmethod
    def comparison_plots(cls, runs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
        """Exact match by level, one bar per run; one grid heatmap per run."""
        out_dir.mkdir(parents=True, exist_ok=True)
        groups = {label: r["exact_match"] for label, r in runs.items()}
        title = "recall exact match by level"
        ylabel = "exact-match rate (fraction of sequences)"
        paths = [plot_bars(groups, out_dir / "recall_exact_match.png", title, ylabel, xlabel="level")]
        for i, (label, r) in enumerate(runs.items()):
            figure = heatmap_figure(GridReport(**r["grid"]), r.get("grid_context"), label)
            path = save_figure(figure, out_dir / f"recall_heatmap_{i}.png")
            paths.append(path)
            r["heatmap"] = str(path.name)
            r["label"] = label
        return paths


build_experiment = RecallExperiment  # what runners.app.execute builds a run with (cfg, dist)

if __name__ == "__main__":
    hydra_main(RUNNER, build_experiment)
