"""Train a byte-level backbone on text and its inference engine on the text-quality reward.

``python -m runners.generation`` (default: a small CPU run on the embedded corpus, a few minutes): the
backbone learns next-byte prediction from ``TextQualityTask`` windows (bits per character falls) and, after
a supervised warm-up, the engine's decoding knobs (temperature, top-p, repetition penalty, layer and head
weights) learn by REINFORCE from ``TextQualityVectorEnv``'s reward (fluency under an independent n-gram
judge, diversity, repetition, length). Evaluation measures bits per character on the validation split
and the reward of engine-decoded continuations of validation prompts, logs each reward component and a
few generated samples as text, and moves the curriculum (longer continuations, shorter prompts).

``task.needle_mix`` (0: text only) makes that share of the supervised batches needle episodes in the
needle evaluation's byte format (:class:`NeedleMix`), so that ``runners.evaluate on_task=needle`` measures a
skill the model was taught; bits per character is still measured on text.

    python -m runners.generation task.corpus=/path/to/texts
    python -m runners.generation preset=echo hardware=gpu
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from envs.common import SupervisedBatch
from envs.generation import COMPONENTS, TextQualityTask, bits_per_char
from envs.generation.reward import reward_means
from envs.generation.tokens import prompt_continuations
from envs.generation.vector import TextQualityVectorEnv
from foundation import make_generator, restore_generator
from runners.app import hydra_main
from runners.ddp import DistInfo
from runners.experiment import AgentExperiment, LevelScore
from runners.logging import RunLogger
from runners.loop import StepOutput
from runners.report import plot_bars

RUNNER = "generation"


def build_task(cfg: DictConfig, split: str = "train") -> TextQualityTask:
    """The task from config: corpus ("builtin", a path or hf:<dataset>), levels, window and reward options."""
    return TextQualityTask.from_config(OmegaConf.to_container(cfg.task, resolve=True), split)


class NeedleMix:
    """The supervised batches of ``sampler`` with a share ``mix`` of whole batches replaced by needle
    episodes (``TextQualityTask.needle_batch``: the evaluation's byte format, haystacks up to the training
    window, loss on the key's bytes).

    Whole batches, not rows: the trainer averages the loss over every scored byte of a batch, so one
    needle row among text rows would weigh its 4 answer bytes against thousands of text bytes (at the
    agiformer preset's 4 windows of 4,096 bytes, 1/3,000 of the step); a needle batch is 16 answer bytes
    alone. Which batches are needles comes from a coin of this wrapper's own stream
    (``generation/needle_mix``); the episodes come from the trainer's generator (``agent/supervised``).
    Neither is the evaluation's stream (``runners.cross_eval`` seeds a bare ``torch.Generator`` with the
    small ``seed`` it is given), so training never replays its episodes.
    ``last_was_needle`` says what the latest batch was (the runner logs needle steps under their own names).
    """

    def __init__(self, sampler: Any, task: TextQualityTask, mix: float, seed: int):
        if isinstance(mix, bool) or not isinstance(mix, int | float) or not 0 < mix <= 1:
            raise ValueError(f"NeedleMix needs a share in (0, 1], got {mix!r}; e.g. task.needle_mix=0.25.")
        task.needle_haystack_range()  # names the fix when the training window cannot hold an episode
        self.sampler, self.task, self.mix = sampler, task, float(mix)
        self.coins = make_generator(seed, "generation/needle_mix")
        self.needle_batches = 0
        self.last_was_needle = False

    def sample_batch(
        self,
        batch_size: int,
        device: str | torch.device | None = None,
        generator: torch.Generator | None = None,
    ) -> SupervisedBatch:
        """A needle batch with probability ``mix``, else the wrapped sampler's text batch."""
        self.last_was_needle = float(torch.rand((), generator=self.coins)) < self.mix
        if not self.last_was_needle:
            return self.sampler.sample_batch(batch_size, device, generator)
        self.needle_batches += 1
        return self.task.needle_batch(batch_size, device, generator)

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.sampler.state_dict(),
            "needle_mix": {"coins": self.coins.get_state(), "needle_batches": self.needle_batches},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        mixed = state.pop("needle_mix", None)
        self.sampler.load_state_dict(state)
        if mixed is not None:  # a checkpoint of a text-only run starts its coins afresh
            restore_generator(self.coins, mixed["coins"], "needle_mix coins")
            self.needle_batches = int(mixed["needle_batches"])


NEEDLE_NAMES = {"loss": "needle_loss", "ce": "needle_ce", "accuracy": "needle_accuracy"}
"""How a needle batch's training metrics are renamed (their bytes are answers, not text)."""


class GenerationExperiment(AgentExperiment):
    """Generation-specific half: the text env, bits per character, reward components and samples."""

    runner = RUNNER
    headline = "reward"
    streams_actions = True  # each written byte joins the observation: the engine's rollouts stream

    def __init__(self, cfg: DictConfig, dist: DistInfo):
        super().__init__(cfg, dist, build_task(cfg))
        mix = float(cfg.task.get("needle_mix") or 0.0)
        if mix > 0:  # 0 keeps the text-only sampler itself: the default run draws what it always drew
            self.sampler = NeedleMix(self.sampler, self.task, mix, self.seed)
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

    def train_step(self, step: int) -> StepOutput:
        """The agent's step; a needle batch's loss and accuracy are logged as ``needle_loss``,
        ``needle_ce`` and ``needle_accuracy`` (the key's bytes), apart from the text batches' ``loss``."""
        if not isinstance(self.sampler, NeedleMix):
            return super().train_step(step)
        self.sampler.last_was_needle = False
        out = super().train_step(step)
        if self.sampler.last_was_needle:
            out.metrics = {NEEDLE_NAMES.get(k, k): v for k, v in out.metrics.items()}
        return out

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
    "reward": (
        "reward by level (engine-decoded continuations of validation prompts)",
        "reward (weighted sum, per episode)",
        None,
        "level",
    ),
    "bits_per_char": (
        "bits per character of held-out text",
        "bits per character (lower is better)",
        None,
        "corpus split",
    ),
}
"""What ``comparison_plots`` draws, one bar per run: each result's (title, y label, y limits, x label)."""


build_experiment = GenerationExperiment  # what runners.app.execute builds a run with (cfg, dist)

if __name__ == "__main__":
    hydra_main(RUNNER, build_experiment)
