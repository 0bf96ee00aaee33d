"""Train a backbone (and its inference engine) on mazes: ``python -m runners.maze``.

The default is a small CPU run (3x3 to 6x6 mazes, a 2-layer transformer) that finishes in a few minutes
and shows the loss falling and the exact-path rate rising. The backbone learns the oracle's shortest
paths from ``MazeTask`` batches drawn at the curriculum's levels; every ``trainer.eval_every`` steps the
model walks fresh mazes greedily in ``MazeVectorEnv`` (token observations, logits read at ``length - 1``
over the four move tokens) and the exact-path rate per level moves the curriculum. With
``task.eval_mode=teacher_forced`` the exact-path rate of perfect mazes comes from one forward pass over
the oracle paths instead, which equals the walk (``envs.maze.evaluate``) and is much faster.

    python -m runners.maze trainer.steps=2000 backbone=hebbian curriculum=mixture
    python -m runners.maze preset=poh_maze hardware=gpu
    torchrun --nproc_per_node=2 -m runners.maze hardware=ddp
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agents.rollout import Rollout
from envs.maze import MazeTask
from envs.maze.evaluate import (
    exact_path_by_size,
    level_table,
    path_rates,
    rollout_rates,
    teacher_forced_equals_rollout,
    teacher_forced_fresh,
)
from envs.maze.fixed import FixedMazeTask, task_from_config
from envs.maze.render import walk_figures
from envs.maze.vector import MazeVectorEnv
from envs.maze.walk import walk_options
from runners.app import hydra_main, rank_seed
from runners.config import ConfigError
from runners.ddp import DistInfo
from runners.experiment import AgentExperiment, LevelScore
from runners.logging import RunLogger
from runners.parity import resolve_parity
from runners.report import plot_bars

RUNNER = "maze"


class MazeExperiment(AgentExperiment):
    """Maze-specific half: the vector env, greedy exact-path evaluation, rollout images and report."""

    runner = RUNNER
    headline = "exact_path"

    def __init__(self, cfg: DictConfig, dist: DistInfo):
        try:  # the ladder, and fixed train / test sets when task.train_mazes / task.test_mazes are set
            task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
            task = task_from_config(task_cfg, int(cfg.seed), rank_seed(cfg, dist))
            prepare_config(cfg, task)
        except ValueError as error:  # a config the task cannot follow: printed without a traceback
            raise ConfigError(str(error)) from None
        super().__init__(cfg, dist, task)
        if self.fixed is not None:  # the epoch order lives in the task; a reservoir would redraw it
            self.sampler.prefetch = 1
        if cfg.task.validity_loss:  # moves into walls get no probability in the loss (the seed's mask)
            self.agent.supervised.allowed_targets = task.allowed_targets
        self._eval_env: MazeVectorEnv | None = None
        self.walk_options = walk_options(cfg.task, self.agent.sup_config.bf16)  # through fixed test sets

    @property
    def fixed(self) -> FixedMazeTask | None:
        """The fixed train / test sets (``task.train_mazes``), or None when every batch is fresh."""
        return self.task if isinstance(self.task, FixedMazeTask) else None

    def make_vector_env(self, num_envs: int, seed: int, task: MazeTask | None = None) -> MazeVectorEnv:
        options = {"obs_mode": "tokens", "step_limit_factor": float(self.cfg.task.step_limit_factor)}
        return MazeVectorEnv(num_envs, task=task or self.task, device=self.device, seed=seed, **options)

    def greedy_rollouts(self, env: MazeVectorEnv, level: int, seed: int) -> Rollout:
        """Every sub-env walks one fresh maze at ``level`` greedily, streaming the backbone (it reads the
        maze once, then one move a step)."""
        policy = self.agent.backbone_policy(self.walk_options["mask_invalid"], stream=True)
        return self.play(env, level, policy, seed)

    def score_level(self, index: int, seed: int) -> LevelScore:
        level, episodes = self.task.ladder[index], self.eval_share(int(self.cfg.task.eval_episodes))
        if self.fixed is not None:  # the fixed test set: solved, exact-path and within-1.05x rates
            walked = self.fixed.walk_test_set(index, self.agent.backbone, **self.walk_options)
            return LevelScore(path_rates(walked.optimal, walked.solved, walked.near_optimal), walked.optimal)
        if self.cfg.task.eval_mode == "teacher_forced" and teacher_forced_equals_rollout(level):
            options = self.walk_options["mask_invalid"], self.walk_options["bf16"]  # one pass = the walk
            exact = teacher_forced_fresh(self.agent.backbone, self.task, level, episodes, seed, *options)
            return LevelScore({"exact_path": exact.float().mean()}, exact)
        if self._eval_env is None:
            self._eval_env = self.make_vector_env(episodes, seed)
        out = self.greedy_rollouts(self._eval_env, index, seed)
        return LevelScore(rollout_rates(out.final), out.final["solved_optimally"], out.env_steps, detail=out)

    def log_detail(self, detail: Rollout | None, index: int, logger: RunLogger, step: int) -> None:
        """Draw the first few walks of the current level (rollout mode only)."""
        if detail is None or not logger.enabled:
            return
        flags = detail.final["success"], detail.final["solved_optimally"]
        level, count = self.task.ladder[index], int(self.cfg.task.render_rollouts)
        figures = walk_figures(detail.final_obs["tokens"], level, *flags, count)
        for i, figure in enumerate(figures):
            logger.figure(f"rollouts/{i}", figure, step)

    def full_evaluation(self, episodes: int | None = None) -> dict[str, Any]:
        """Exact-path, near-optimal (within 1.05x) and success rate for every training level and the same
        sizes from other generators; for fixed sets, on every level's test set (the mazes the run was tested
        on)."""
        if self.fixed is not None:
            return self.fixed.test_report(self.agent.backbone, **self.walk_options)
        task = self.task.with_variants(list(self.cfg.task.eval_generators))
        env = self.make_vector_env(episodes or int(self.cfg.task.eval_episodes), self.seed + 7, task)
        walks = [self.greedy_rollouts(env, i, self.seed + 7 + i).final for i in range(len(env.task.ladder))]
        return level_table((level, rollout_rates(w)) for level, w in zip(env.task.ladder, walks, strict=True))

    def plot_title(self) -> str:
        return f"{super().plot_title()} ({self.cfg.task.eval_episodes} mazes each)"

    @classmethod
    def comparison_plots(cls, runs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
        """Exact-path accuracy by maze size, one bar per run and one figure per generator."""
        title, name = "exact-path rate by maze size, {} mazes (greedy walks)", "maze_exact_path_{}.png"
        labels = {"ylabel": "exact-path rate (fraction of mazes)", "xlabel": "maze size (rows x columns)"}
        groups = exact_path_by_size(runs)
        return [plot_bars(groups[g], out_dir / name.format(g), title.format(g), **labels) for g in groups]


def prepare_config(cfg: DictConfig, task: MazeTask) -> None:
    """What the config leaves to the task, filled in before the agent is built (and saved with the run):
    trainer.steps from trainer.epochs (a fresh run only: a resumed one keeps its saved steps, which a
    trainer.steps override may extend), the CNN encoder's maze shape, and a parity target given as a
    preset name turned into that preset's parameter count."""
    if cfg.trainer.epochs is not None:  # fresh mazes refuse it (a ValueError, shown as a ConfigError)
        steps = task.steps_for_epochs(float(cfg.trainer.epochs), int(cfg.trainer.supervised.batch_size))
        if not cfg.resume:
            cfg.trainer.steps = steps
    if cfg.backbone.maze_encoder and cfg.backbone.maze_shape is None:
        cfg.backbone.maze_shape = list(task.maze_shape())
    resolve_parity(cfg, RUNNER, task)


build_experiment = MazeExperiment  # what runners.app.execute builds a run with (cfg, dist)

if __name__ == "__main__":
    hydra_main(RUNNER, build_experiment)
