"""Train a byte-level backbone on text and its inference engine on the text-quality reward.

``python -m runners.generation`` (default: a small CPU run on the embedded corpus, a few minutes): the
backbone learns next-byte prediction from ``TextQualityTask`` windows (bits per character falls) and, after
a supervised warm-up, the engine's decoding knobs (temperature, top-p, repetition penalty, layer and head
weights) learn by REINFORCE from ``TextQualityVectorEnv``'s reward (fluency under an independent n-gram
judge, diversity, repetition, length). Evaluation measures bits per character on the validation split
and the reward of engine-decoded continuations of validation prompts, logs each reward component and a
few generated samples as text, and moves the curriculum (longer continuations, shorter prompts).

    python -m runners.generation task.corpus=/path/to/texts
    python -m runners.generation preset=echo hardware=gpu
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from envs.generation import COMPONENTS, TextQualityTask, bits_per_char
from envs.generation.reward import reward_means
from envs.generation.tokens import prompt_continuations
from envs.generation.vector import TextQualityVectorEnv
from foundation import make_generator
from runners.app import hydra_main
from runners.ddp import DistInfo
from runners.experiment import AgentExperiment, LevelScore
from runners.logging import RunLogger
from runners.report import plot_bars

RUNNER = "generation"


def build_task(cfg: DictConfig, split: str = "train") -> TextQualityTask:
    """The task from config: corpus ("builtin", a path or hf:<dataset>), levels, window and reward options."""
    return TextQualityTask.from_config(OmegaConf.to_container(cfg.task, resolve=True), split)


class GenerationExperiment(AgentExperiment):
    """Generation-specific half: the text env, bits per character, reward components and samples."""

    runner = RUNNER
    headline = "reward"
    streams_actions = True  # each written byte joins the observation: the engine's rollouts stream

    def __init__(self, cfg: DictConfig, dist: DistInfo):
        super().__init__(cfg, dist, build_task(cfg))
        self.eval_task = build_task(cfg, split="validation")
        self._eval_env: TextQualityVectorEnv | None = None
        self.last_bits_per_char: float | None = None

    def make_vector_env(
        self, num_envs: int, seed: int, task: TextQualityTask | None = None
    ) -> TextQualityVectorEnv:
        # the RL env (no task given) groups its sub-envs by prompt for engine.rl.group_size's baseline
        group = int(self.cfg.engine.rl.get("group_size", 1)) if task is None else 1
        return TextQualityVectorEnv(
            num_envs,
            task=task or self.task,
            device=self.device,
            seed=seed,
            dense=bool(self.cfg.task.dense),
            prompt_group_size=group,
        )

    def score_level(self, index: int, seed: int) -> LevelScore:
        """Every sub-env writes one continuation of a validation prompt with the engine's policy (the one
        rollout function): the reward and each of its components at the end, and a few samples."""
        if self._eval_env is None:
            envs = self.eval_share(int(self.cfg.task.eval_envs))
            self._eval_env = self.make_vector_env(envs, seed, self.eval_task)
        policy = self.agent.policy(generator=make_generator(seed, "eval/generate", self.device))
        out = self.play(self._eval_env, index, policy, seed)
        samples = prompt_continuations(out.first_obs, out.final_obs, 3)
        return LevelScore(reward_means(out.final), out.final["success"], out.env_steps, detail=samples)

    def log_detail(self, detail: list[tuple[str, str]], index: int, logger: RunLogger, step: int) -> None:
        text = "\n\n".join(f"**prompt:** {p!r}\n\n**continuation:** {c!r}" for p, c in detail)
        logger.text("samples", text, step)

    def bits_per_char(self, split: str) -> float:
        return bits_per_char(
            self.agent.backbone,
            self.task.corpus,
            split,
            context=int(self.cfg.task.get("train_window") or self.cfg.task.window),  # the trained context
            max_bytes=int(self.cfg.task.eval_bytes),
            device=self.device,
        )

    def eval_extras(self, step: int, logger: RunLogger) -> dict[str, float]:
        """Bits per character on the validation split, beside the judge's own, and the engine's values."""
        self.last_bits_per_char = self.bits_per_char("validation")
        return {
            "bits_per_char": self.last_bits_per_char,
            "reference_bits_per_char": self.task.reference_bits,
            **self.agent.engine.metrics(),
        }

    def full_evaluation(self, episodes: int | None = None) -> dict[str, Any]:
        """Bits per character on validation and test, reward and its components on every level."""
        results: dict[str, Any] = {
            "bits_per_char": {split: self.bits_per_char(split) for split in ("validation", "test")},
            "reward": {},
            "components": {},
            "samples": {},
        }
        if episodes:
            self._eval_env = self.make_vector_env(episodes, self.seed, self.eval_task)
        for index, level in enumerate(self.task.ladder):
            scored = self.score_level(index, self.seed + index)
            results["reward"][level.name] = float(scored.means["reward"])
            components = {c: scored.means.get(f"reward_{c}") for c in COMPONENTS}
            results["components"][level.name] = {c: float(v) for c, v in components.items() if v is not None}
            results["samples"][level.name] = scored.detail
        return results

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "bits_per_char": self.last_bits_per_char}

    def plot_title(self) -> str:
        return f"{super().plot_title()} ({self.cfg.task.eval_envs} continuations each)"

    @classmethod
    def comparison_plots(cls, runs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
        """Reward by level and bits per character, one bar per run."""
        paths = []
        for key, labels in COMPARISONS.items():
            groups = {label: r[key] for label, r in runs.items()}
            paths.append(plot_bars(groups, out_dir / f"generation_{key}.png", *labels))
        return paths


COMPARISONS = {
    "reward": ("reward by level (engine-decoded continuations of validation prompts)",
               "reward (weighted sum, per episode)", None, "level"),
    "bits_per_char": ("bits per character of held-out text", "bits per character (lower is better)",
                      None, "corpus split"),
}
"""What ``comparison_plots`` draws, one bar per run: each result's (title, y label, y limits, x label)."""


build_experiment = GenerationExperiment  # what runners.app.execute builds a run with (cfg, dist)

if __name__ == "__main__":
    hydra_main(RUNNER, build_experiment)
