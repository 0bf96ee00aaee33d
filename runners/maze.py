"""Train a backbone (and its inference engine) on mazes: ``python -m runners.maze``.

The default is a small CPU run (3x3 to 6x6 mazes, a 2-layer transformer) that finishes in a few minutes
and shows the loss falling and the exact-path rate rising. The backbone learns the oracle's shortest
paths from ``MazeTask`` batches drawn at the curriculum's levels; every ``trainer.eval_every`` steps the
model walks fresh mazes greedily in ``MazeVectorEnv`` (token observations, logits read at ``length - 1``
over the four move tokens) and the exact-path rate per level moves the curriculum.

    python -m runners.maze trainer.steps=2000 backbone=hebbian curriculum=mixture
    python -m runners.maze preset=poh_maze hardware=gpu
    torchrun --nproc_per_node=2 -m runners.maze hardware=ddp
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from agents.rollout import BackbonePolicy, Rollout, rollout
from envs.maze import MazeLevel, MazeTask
from envs.maze.render import rollout_figure
from envs.maze.vector import MazeVectorEnv
from foundation import make_generator
from runners.app import cli_main
from runners.config import register_configs
from runners.ddp import DistInfo, all_reduce_mean
from runners.experiment import AgentExperiment
from runners.introspection import log_model_internals
from runners.logging import RunLogger
from runners.loop import EvalResult
from runners.report import plot_bars

RUNNER = "maze"


class MazeExperiment(AgentExperiment):
    """Maze-specific half: the vector env, greedy exact-path evaluation, rollout images and report."""

    runner = RUNNER

    def __init__(self, cfg: DictConfig, dist: DistInfo):
        spec = OmegaConf.to_container(cfg.task.levels) if cfg.task.levels is not None else None
        task = MazeTask.from_spec(spec, level=int(cfg.task.start_level), horizons=int(cfg.task.horizons))
        super().__init__(cfg, dist, task)
        self.eval_generator_seed = self.seed + 7
        self.last_eval: dict[str, float] = {}

    def make_vector_env(
        self, num_envs: int, seed: int, levels: list[MazeLevel] | None = None
    ) -> MazeVectorEnv:
        return MazeVectorEnv(
            num_envs,
            task=None if levels else self.task,
            device=self.device,
            obs_mode="tokens",
            seed=seed,
            levels=levels or None,
            horizons=self.task.horizons if levels else None,
            step_limit_factor=float(self.cfg.task.step_limit_factor),
        )

    def greedy_rollouts(self, env: MazeVectorEnv, level: int, seed: int) -> Rollout:
        """Every sub-env walks one fresh maze at ``level`` greedily (the one rollout function, streaming
        the backbone: it reads the maze once, then one move a step)."""
        env.set_level(level)
        self.agent.backbone.eval()
        policy = BackbonePolicy(
            self.agent.backbone,
            action_token_ids=torch.as_tensor(self.task.action_token_ids),
            greedy=True,
            mask_invalid=bool(self.cfg.task.mask_invalid),
            stream=True,
        )
        return rollout(env, policy, seed=seed)

    def evaluate(self, step: int, logger: RunLogger) -> EvalResult:
        level_before, levels = self.levels_to_evaluate()
        env = self.make_vector_env(int(self.cfg.task.eval_episodes), self.eval_generator_seed + step)
        metrics: dict[str, float] = {}
        per_level: dict[int, float] = {}
        env_steps = 0
        for index in levels:
            out = self.greedy_rollouts(env, index, self.eval_generator_seed + step + index)
            env_steps += out.env_steps
            optimal, success = out.final["solved_optimally"], out.final["success"]
            rates = all_reduce_mean(
                {"exact": optimal.float().mean(), "success": success.float().mean()}, self.dist
            )
            name = self.task.ladder[index].name
            metrics[f"exact_path/{name}"] = float(rates["exact"])
            metrics[f"success/{name}"] = float(rates["success"])
            per_level[index] = float(rates["exact"])
            self.curriculum.record(torch.full_like(optimal, index, dtype=torch.long), optimal)
            if index == level_before:
                self.log_rollouts(out, index, logger, step)
        metrics["exact_path"] = per_level.get(level_before, 0.0)
        metrics["exact_path_mean"] = sum(per_level.values()) / max(len(per_level), 1)
        if self.cfg.trainer.inspect:
            sample = self.task.sample_batch(
                1, self.device, make_generator(step, "inspect", "cpu"), level_before
            )
            log_model_internals(self.agent.backbone, sample.tokens, logger, step)
        self.log_curriculum(logger, step)
        self.last_eval = {self.task.ladder[k].name: v for k, v in per_level.items()}
        return EvalResult(metrics, level_before, metrics["exact_path"], per_level, env_steps)

    def log_rollouts(self, out: Rollout, level: int, logger: RunLogger, step: int) -> None:
        if not logger.enabled:
            return
        count = min(int(self.cfg.task.render_rollouts), out.finished.shape[0])
        tokens = out.final_obs["tokens"][:count].cpu().numpy()
        success, optimal = out.final["success"], out.final["solved_optimally"]
        for i in range(count):
            figure = rollout_figure(tokens[i], self.task.ladder[level], bool(success[i]), bool(optimal[i]))
            logger.figure(f"rollouts/{i}", figure, step)

    def full_evaluation(self, episodes: int | None = None) -> dict[str, Any]:
        """Exact-path and success rate for every training level and the same sizes from other generators."""
        episodes = episodes or int(self.cfg.task.eval_episodes)
        levels = list(self.task.ladder)
        for generator in self.cfg.task.eval_generators:
            levels += [
                MazeLevel(
                    f"{lv.name}-{generator}", lv.height, lv.width, generator=generator, min_path=lv.min_path
                )
                for lv in self.task.ladder
                if lv.generator != generator and lv.generator != "layout"
            ]
        env = self.make_vector_env(episodes, self.eval_generator_seed, levels)
        results: dict[str, Any] = {"exact_path": {}, "success": {}, "generator": {}, "size": {}}
        for index, level in enumerate(env.task.ladder):
            out = self.greedy_rollouts(env, index, self.eval_generator_seed + index)
            results["exact_path"][level.name] = float(out.final["solved_optimally"].float().mean())
            results["success"][level.name] = float(out.final["success"].float().mean())
            results["generator"][level.name] = level.generator
            results["size"][level.name] = f"{level.height}x{level.width}"
        return results

    def summary(self) -> dict[str, Any]:
        return {"exact_path_by_level": self.last_eval, "curriculum": self.curriculum.summary()}

    def plots(self, out_dir: Path, history: list[dict[str, Any]]) -> list[Path]:
        if not self.last_eval:
            return []
        return [
            plot_bars(
                {"final": self.last_eval},
                out_dir / "exact_path_by_level.png",
                "maze exact-path",
                "exact-path rate",
            )
        ]


def comparison_plots(runs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """Exact-path accuracy by maze size, one bar per run and one figure per generator."""
    plots = []
    generators = sorted({g for r in runs.values() for g in r["generator"].values()})
    for generator in generators:
        groups = {
            label: {
                r["size"][name]: v for name, v in r["exact_path"].items() if r["generator"][name] == generator
            }
            for label, r in runs.items()
        }
        path = out_dir / f"maze_exact_path_{generator}.png"
        plots.append(plot_bars(groups, path, f"exact-path accuracy by size ({generator})", "exact-path rate"))
    return plots


def build_experiment(cfg: DictConfig, dist: DistInfo) -> MazeExperiment:
    return MazeExperiment(cfg, dist)


register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="maze")
def main(cfg: DictConfig) -> None:
    cli_main(cfg, RUNNER, build_experiment)


if __name__ == "__main__":
    main()
