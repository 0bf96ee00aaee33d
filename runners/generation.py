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

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from agents.rollout import rollout
from envs.generation import COMPONENTS, TextQualityTask, bits_per_char, decode, load_corpus
from envs.generation.vector import TextQualityVectorEnv
from foundation import make_generator
from runners.app import cli_main
from runners.config import register_configs
from runners.ddp import DistInfo, all_reduce_mean
from runners.experiment import AgentExperiment
from runners.introspection import log_model_internals
from runners.logging import RunLogger
from runners.loop import EvalResult
from runners.report import plot_bars

RUNNER = "generation"


def build_task(cfg: DictConfig, split: str = "train") -> TextQualityTask:
    """The task from config: corpus ("builtin" or a path), levels, window and reward options."""
    corpus = load_corpus(None if cfg.task.corpus == "builtin" else str(cfg.task.corpus))
    levels = OmegaConf.to_container(cfg.task.levels) if cfg.task.levels is not None else None
    return TextQualityTask(
        levels,
        int(cfg.task.start_level),
        corpus,
        window=int(cfg.task.window),
        order=int(cfg.task.order),
        reward_weights=OmegaConf.to_container(cfg.task.reward_weights),
        prompt_split=split,
    )


class GenerationExperiment(AgentExperiment):
    """Generation-specific half: the text env, bits per character, reward components and samples."""

    runner = RUNNER

    def __init__(self, cfg: DictConfig, dist: DistInfo):
        super().__init__(cfg, dist, build_task(cfg))
        self.eval_task = build_task(cfg, split="validation")
        self.last_eval: dict[str, float] = {}

    def make_vector_env(
        self, num_envs: int, seed: int, task: TextQualityTask | None = None
    ) -> TextQualityVectorEnv:
        return TextQualityVectorEnv(
            num_envs, task=task or self.task, device=self.device, seed=seed, dense=bool(self.cfg.task.dense)
        )

    def generate(self, env: TextQualityVectorEnv, level: int, seed: int) -> dict[str, Any]:
        """Every sub-env writes one continuation with the engine's policy (the one rollout function);
        its final score and components, and a few prompt / continuation pairs."""
        env.set_level(level)
        self.agent.backbone.eval()
        policy = self.agent.policy(generator=make_generator(seed, "eval/generate", self.device))
        out = rollout(env, policy, seed=seed)
        names = [*[c for c in COMPONENTS if c in out.final], "score", "success"]
        prompts, ends = out.first_obs, out.final_obs
        samples = []
        for i in range(min(3, env.num_envs)):
            prompt = decode(prompts["tokens"][i, : int(prompts["length"][i])])
            samples.append((prompt, decode(ends["tokens"][i, : int(ends["length"][i])])[len(prompt) :]))
        final = {k: out.final[k].float() for k in names}
        return {"final": final, "samples": samples, "env_steps": out.env_steps}

    def evaluate(self, step: int, logger: RunLogger) -> EvalResult:
        level_before, levels = self.levels_to_evaluate()
        backbone = self.agent.backbone
        bpc = bits_per_char(
            backbone,
            self.task.corpus,
            "validation",
            context=int(self.cfg.task.window),
            max_bytes=int(self.cfg.task.eval_bytes),
            device=self.device,
        )
        metrics: dict[str, float] = {
            "bits_per_char": bpc,
            "reference_bits_per_char": self.task.reference_bits,
        }
        env = self.make_vector_env(int(self.cfg.task.eval_envs), self.seed + step, self.eval_task)
        per_level: dict[int, float] = {}
        env_steps = 0
        for index in levels:
            out = self.generate(env, index, self.seed + step + index)
            env_steps += out["env_steps"]
            means = all_reduce_mean({k: v.mean() for k, v in out["final"].items()}, self.dist)
            name = self.task.ladder[index].name
            for key, value in means.items():
                metrics[f"{'reward' if key == 'score' else key}/{name}"] = float(value)
            per_level[index] = float(means["success"])
            success = out["final"]["success"].bool()
            self.curriculum.record(torch.full_like(success, index, dtype=torch.long), success)
            if index == level_before:
                metrics["reward"] = float(means["score"])
                metrics.update({f"reward_{k}": float(means[k]) for k in COMPONENTS if k in means})
                text = "\n\n".join(f"**prompt:** {p!r}\n\n**continuation:** {c!r}" for p, c in out["samples"])
                logger.text("samples", text, step)
        metrics.update({k: v for k, v in self.agent.engine.metrics().items()})
        if self.cfg.trainer.inspect:
            sample = self.task.sample_batch(1, self.device, None, level_before)
            log_model_internals(backbone, sample.tokens, logger, step)
        self.log_curriculum(logger, step)
        self.last_eval = {"bits_per_char": bpc, "reward": metrics.get("reward", 0.0)}
        return EvalResult(metrics, level_before, metrics.get("reward", 0.0), per_level, env_steps)

    def full_evaluation(self, episodes: int | None = None) -> dict[str, Any]:
        """Bits per character on validation and test, reward and its components on every level."""
        backbone = self.agent.backbone
        results: dict[str, Any] = {
            split: bits_per_char(
                backbone,
                self.task.corpus,
                split,
                context=int(self.cfg.task.window),
                max_bytes=int(self.cfg.task.eval_bytes),
                device=self.device,
            )
            for split in ("validation", "test")
        }
        results = {"bits_per_char": results, "reward": {}, "components": {}, "samples": {}}
        env = self.make_vector_env(episodes or int(self.cfg.task.eval_envs), self.seed, self.eval_task)
        for index, level in enumerate(self.task.ladder):
            out = self.generate(env, index, self.seed + index)
            results["reward"][level.name] = float(out["final"]["score"].mean())
            results["components"][level.name] = {
                k: float(v.mean()) for k, v in out["final"].items() if k in COMPONENTS
            }
            results["samples"][level.name] = out["samples"]
        return results

    def summary(self) -> dict[str, Any]:
        return {"final_eval": self.last_eval, "curriculum": self.curriculum.summary()}


def comparison_plots(runs: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """Reward by level and bits per character, one bar per run."""
    rewards = {label: r["reward"] for label, r in runs.items()}
    bpc = {label: r["bits_per_char"] for label, r in runs.items()}
    return [
        plot_bars(rewards, out_dir / "generation_reward.png", "reward by level", "reward", ylim=None),
        plot_bars(
            bpc, out_dir / "generation_bits_per_char.png", "bits per character", "bits/char", ylim=None
        ),
    ]


def build_experiment(cfg: DictConfig, dist: DistInfo) -> GenerationExperiment:
    return GenerationExperiment(cfg, dist)


register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="generation")
def main(cfg: DictConfig) -> None:
    cli_main(cfg, RUNNER, build_experiment)


if __name__ == "__main__":
    main()
