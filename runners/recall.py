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

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from envs.recall.evaluate import GridReport, answer_scores, evaluate_grid, ladder_grid, plot_heatmap
from envs.recall.task import RecallTask
from envs.recall.vector import RecallVectorEnv
from foundation import make_generator
from runners.app import cli_main
from runners.config import register_configs
from runners.ddp import DistInfo, all_reduce_mean
from runners.experiment import AgentExperiment
from runners.introspection import log_model_internals
from runners.logging import RunLogger
from runners.loop import EvalResult
from runners.report import heatmap_figure, plot_bars

RUNNER = "recall"


class RecallExperiment(AgentExperiment):
    """Recall-specific half: vector env, teacher-forced per-level evaluation, grid heatmaps."""

    runner = RUNNER

    def __init__(self, cfg: DictConfig, dist: DistInfo):
        family = str(cfg.task.family)
        spec = OmegaConf.to_container(cfg.task.levels) if cfg.task.levels is not None else None
        task = RecallTask.from_spec(family, spec, level=int(cfg.task.start_level))
        super().__init__(cfg, dist, task)
        self.last_eval: dict[str, float] = {}
        self.last_grid: GridReport | None = None

    def make_vector_env(self, num_envs: int, seed: int) -> RecallVectorEnv:
        return RecallVectorEnv(num_envs, task=self.task, device=self.device, obs_mode="sequence", seed=seed)

    def score_level(
        self, index: int, batch_size: int, generator: torch.Generator
    ) -> tuple[float, float, int]:
        """Teacher-forced (answer accuracy, exact-match rate, sequences fully right) at ladder ``index``."""
        backbone = self.agent.backbone
        backbone.eval()
        batch = self.task.sample_batch(batch_size, self.device, generator, index)
        right, total, exact = answer_scores(backbone, batch, self.task.action_token_ids)
        return right / max(total, 1), exact / batch_size, exact

    def evaluate(self, step: int, logger: RunLogger) -> EvalResult:
        level_before, levels = self.levels_to_evaluate()
        generator = make_generator(self.seed, f"eval/{step}", "cpu")
        batch_size = int(self.cfg.task.eval_batch)
        metrics: dict[str, float] = {}
        per_level: dict[int, float] = {}
        for index in levels:
            accuracy, exact_rate, exact = self.score_level(index, batch_size, generator)
            rates = all_reduce_mean(
                {"accuracy": torch.tensor(accuracy), "exact": torch.tensor(exact_rate)}, self.dist
            )
            name = self.task.ladder[index].name
            metrics[f"accuracy/{name}"] = float(rates["accuracy"])
            metrics[f"exact_match/{name}"] = float(rates["exact"])
            per_level[index] = float(rates["exact"])
            success = torch.arange(batch_size, device=self.device) < exact
            self.curriculum.record(torch.full((batch_size,), index, device=self.device), success)
        metrics["exact_match"] = per_level.get(level_before, 0.0)
        metrics["accuracy"] = metrics.get(f"accuracy/{self.task.ladder[level_before].name}", 0.0)
        if logger.enabled:
            self.last_grid = evaluate_grid(
                self.agent.backbone, ladder_grid(self.task), 16, 1, self.device, step
            )
            logger.figure("eval/heatmap", _heatmap_figure(self.last_grid), step)
            if self.cfg.trainer.inspect:
                sample = self.task.sample_batch(1, self.device, generator, level_before)
                log_model_internals(self.agent.backbone, sample.tokens, logger, step)
        self.log_curriculum(logger, step)
        self.last_eval = {self.task.ladder[k].name: v for k, v in per_level.items()}
        return EvalResult(metrics, level_before, metrics["exact_match"], per_level)

    def full_evaluation(self, episodes: int | None = None) -> dict[str, Any]:
        """Accuracy and exact match on every ladder level, and the family grid."""
        batch_size = episodes or int(self.cfg.task.eval_batch)
        generator = make_generator(self.seed, "full_eval", "cpu")
        results: dict[str, Any] = {"accuracy": {}, "exact_match": {}}
        for index, level in enumerate(self.task.ladder):
            accuracy, exact_rate, _ = self.score_level(index, batch_size, generator)
            results["accuracy"][level.name] = accuracy
            results["exact_match"][level.name] = exact_rate
        grid = evaluate_grid(
            self.agent.backbone, ladder_grid(self.task), batch_size, 1, self.device, self.seed
        )
        results["grid"] = grid.to_dict()
        return results

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "exact_match_by_level": self.last_eval,
            "curriculum": self.curriculum.summary(),
        }
        if self.last_grid is not None:
            out["grid"] = self.last_grid.to_dict()
        return out

    def plots(self, out_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        paths = []
        if self.last_eval:
            paths.append(
                plot_bars(
                    {"final": self.last_eval}, out_dir / "exact_match_by_level.png", "recall", "exact match"
                )
            )
        if self.last_grid is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            paths.append(out_dir / "recall_heatmap.png")
            plot_heatmap(self.last_grid, "exact_match", paths[-1])
        return paths


def _heatmap_figure(report: GridReport) -> Any:
    """The grid report's exact-match heatmap as a pyplot figure (for TensorBoard)."""
    values = [[float("nan") if v is None else v for v in row] for row in report.exact_match]
    title = f"{report.family}: exact match"
    return heatmap_figure(
        values, report.row_values, report.col_values, title, report.col_name, report.row_name
    )


def comparison_plots(runs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """Exact match by level, one bar per run; one grid heatmap per run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    groups = {label: r["exact_match"] for label, r in runs.items()}
    paths = [
        plot_bars(groups, out_dir / "recall_exact_match.png", "recall exact match by level", "exact match")
    ]
    for i, (label, r) in enumerate(runs.items()):
        path = out_dir / f"recall_heatmap_{i}.png"
        plot_heatmap(GridReport(**r["grid"]), "exact_match", path)
        paths.append(path)
        r["heatmap"] = str(path.name)
        r["label"] = label
    return paths


def build_experiment(cfg: DictConfig, dist: DistInfo) -> RecallExperiment:
    return RecallExperiment(cfg, dist)


register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="recall")
def main(cfg: DictConfig) -> None:
    cli_main(cfg, RUNNER, build_experiment)


if __name__ == "__main__":
    main()
