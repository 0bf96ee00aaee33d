"""What does reward-driven engine training add on each task family? The two-layer claim, measured (issue #27).

    python -m bench.engine_ablation --device cpu --threads 1 --families copy --budget-s 5 --seeds 0
    python -m bench.engine_ablation --device cuda --budget-s 6 --seeds 0 1 2 --out runs/engine_ablation

For every family (maze, copy, associative recall, needle, text), every seed and every arm, a small
transformer backbone trains from scratch for the same wall-clock budget (``--budget-s`` seconds, CUDA
synchronised at each check) on one device, and is then measured on ``--eval-episodes`` fresh episodes of
the family's vector env (seeded apart from training):

- ``greedy`` / ``sampled``: the supervised backbone alone (the whole budget supervised), decoded by the
  arg-max or by sampling its own logits;
- ``reinforce`` / ``ppo``: + the engine (temperature, top-p, repetition penalty, layer and head weights)
  trained from the env's reward by REINFORCE / PPO;
- ``conditioned``: + the conditioned engine (per-step temperature and top-p offsets from the hidden state
  and the family's features, :mod:`agents.engine_features`), trained by REINFORCE.

Engine arms run under each ``--schedules`` entry: ``interleaved`` (the engine learns together with the
backbone: supervised warm-up for ``--warmup`` of the budget, then ``--sup-per-rl`` supervised steps per RL
step until the budget is spent) and ``after`` (engine after backbone: the backbone trains supervised for
``1 - --rl-share`` of the budget - the supervised-only run's snapshot at that time, so it is not retrained -
then the engine alone for the rest). Engine arms are measured by sampling through the engine, as it was
trained; maze moves are masked to legal ones in every arm (``--no-mask`` turns that off).

Reported per family and arm, mean and standard error over seeds: the task's success metric (maze: exact
shortest path; recall: exact match; text: success under the calibrated judge, and fluency), the episode
reward (return), and every engine value the run converged to. Printed as a Markdown table; JSON (every
seed's numbers and the arguments) under ``--out``, with TensorBoard scalars of each engine run's values
over time beside its rollouts' success (``--out/tb``).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.backbones import BackboneConfig, build_backbone
from agents.dual import DualAgent, RLConfig, SupervisedConfig
from agents.engine import InferenceEngine
from agents.engine_features import for_family
from agents.rollout import BackbonePolicy, rollout
from bench.engine_decoding import mean_se
from foundation import make_generator, resolve_device, seed_everything
from runners.report import write_report

FAMILIES = ("maze", "copy", "associative", "needle", "text")
ARMS = ("greedy", "sampled", "reinforce", "ppo", "conditioned")
ENGINE_ARMS = ("reinforce", "ppo", "conditioned")
SCHEDULES = ("interleaved", "after")
DEFAULT_LEVELS = {
    "maze": "6x6",
    "copy": "len8-v8",
    "associative": "kv2-v8-q2-t8",
    "needle": "ctx64",
    "text": "p64-c32",
}
ENGINE_VALUES = ("temperature", "top_p", "repetition_penalty", "last_layer_weight", "step_temperature_mean")


@dataclass
class Family:
    """One family's task, its vector envs and the names of its metrics."""

    name: str
    task: Any
    make_env: Callable[[int, int, bool], Any]  # (num_envs, seed, held_out) -> native vector env
    success_key: str  # the final-info key of the task's success metric
    stream: bool = False
    mask: bool = False
    extra_keys: tuple[str, ...] = ()


def build_family(name: str, level: str | None, device: torch.device, mask: bool) -> Family:
    """The task and env factory of ``name`` at ``level`` (a default ladder name; default: DEFAULT_LEVELS)."""
    level = level or DEFAULT_LEVELS[name]
    if name == "maze":
        from envs.maze import MazeTask
        from envs.maze.vector import MazeVectorEnv

        task = MazeTask.from_spec([level])  # one level: observations only as wide as it needs

        def maze_env(num: int, seed: int, held_out: bool) -> Any:
            return MazeVectorEnv(num, task=task, device=device, obs_mode="tokens", seed=seed)

        return Family(
            name, task, maze_env, "solved_optimally", stream=True, mask=mask, extra_keys=("success",)
        )
    if name == "text":
        from envs.generation.task import TextQualityTask
        from envs.generation.vector import TextQualityVectorEnv

        chosen = [lv for lv in TextQualityTask.default_levels() if lv.name == level]
        if not chosen:
            names = [lv.name for lv in TextQualityTask.default_levels()]
            raise SystemExit(f"Unknown text level {level!r}; pass --levels text=<one of {names}>.")
        window = chosen[0].prompt_length + chosen[0].continuation_length
        task = TextQualityTask(chosen, window=window)
        held = TextQualityTask(chosen, window=window, prompt_split="test")

        def text_env(num: int, seed: int, held_out: bool) -> Any:
            chosen = held if held_out else task
            return TextQualityVectorEnv(num, task=chosen, device=device, seed=seed, dense=not held_out)

        return Family(name, task, text_env, "success", stream=True, extra_keys=("fluency", "score"))
    from envs.recall.task import RecallTask
    from envs.recall.vector import RecallVectorEnv

    task = RecallTask.from_spec(name, [level])

    def recall_env(num: int, seed: int, held_out: bool) -> Any:
        return RecallVectorEnv(num, task=task, device=device, obs_mode="sequence", seed=seed)

    return Family(name, task, recall_env, "success", extra_keys=("accuracy",))


class EpisodeReturn:
    """Wraps a native vector env so each step's info carries ``episode_return``, the reward summed since
    the episode began (the rollout keeps its value at each sub-env's first episode end)."""

    def __init__(self, env: Any):
        self.env, self.num_envs = env, env.num_envs
        self.unwrapped = env.unwrapped
        self.running = torch.zeros(env.num_envs, device=env.unwrapped.device)

    def reset(self, **kwargs: Any) -> Any:
        self.running.zero_()
        return self.env.reset(**kwargs)

    def step(self, actions: torch.Tensor) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self.running = self.running + torch.as_tensor(reward, device=self.running.device).float()
        info = dict(info)
        info["episode_return"] = self.running.clone()
        done = torch.as_tensor(terminated, device=self.running.device) | torch.as_tensor(
            truncated, device=self.running.device
        )
        self.running = self.running.masked_fill(done, 0.0)
        return obs, reward, terminated, truncated, info


def make_agent(fam: Family, arm: str, args: argparse.Namespace, seed: int, device: torch.device) -> DualAgent:
    """A fresh backbone, the arm's engine and a DualAgent wired with the family's mask and features."""
    config = BackboneConfig(
        vocab_size=fam.task.vocab_size,
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        max_seq_len=args.max_seq_len,
        horizons=getattr(fam.task, "horizons", 1),
    )
    torch.manual_seed(seed)
    backbone = build_backbone(config)
    features = for_family(fam.name) if arm == "conditioned" else None
    engine = InferenceEngine.for_backbone(
        backbone,
        fam.task.action_token_ids,
        conditioned=arm == "conditioned",
        n_features=features.size if features else 0,
    )
    rl = RLConfig(
        algorithm="ppo" if arm == "ppo" else "reinforce",
        lr=args.rl_lr,
        rollout_steps=args.rollout_steps,
        entropy_coef=0.001,
        default_pull=0.01,
    )
    sup = SupervisedConfig(
        lr=args.lr, warmup_steps=20, total_steps=args.max_sup_steps, batch_size=args.batch_size
    )
    return DualAgent(
        backbone,
        engine,
        fam.task,
        supervised=sup,
        rl=rl,
        seed=seed,
        device=device,
        total_steps=args.max_sup_steps,
        mask_invalid=fam.mask,
        features=features,
    )


class Clock:
    """Seconds since start, CUDA synchronised so queued kernels count against the budget."""

    def __init__(self, device: torch.device):
        self.device = device
        self.start = time.perf_counter()

    def __call__(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.start


def train(
    agent: DualAgent,
    env: Any,
    budget: float,
    phases: Callable[[float], str],
    writer: Any = None,
    snapshot_at: float | None = None,
) -> tuple[dict[str, int], dict[str, Any] | None]:
    """Step ``agent`` until ``budget`` seconds are spent, each step's kind from ``phases(elapsed)``
    (``"supervised"`` or ``"rl"``); returns the step counts and the backbone's state at ``snapshot_at``."""
    clock, counts, snapshot, elapsed = Clock(agent.device), {"supervised": 0, "rl": 0}, None, 0.0
    while elapsed < budget:
        for _ in range(8):  # check the clock (a host sync) every 8 supervised steps or after an RL step
            phase = phases(elapsed)
            metrics = agent.rl_step(env) if phase == "rl" else agent.supervised_step()
            counts[phase] += 1
            if writer is not None and phase == "rl" and counts["rl"] % 5 == 0:
                for key, value in {**metrics, **agent.engine.metrics()}.items():
                    if key.startswith(("engine/", "rl/success_rate", "rl/return")):
                        writer.add_scalar(key, float(value), counts["rl"])
            if phase == "rl":
                break
        elapsed = clock()
        if snapshot_at is not None and snapshot is None and elapsed >= snapshot_at:
            snapshot = {"state": copy.deepcopy(agent.backbone.state_dict()), "steps": counts["supervised"]}
    return counts, snapshot


@torch.no_grad()
def evaluate(
    agent: DualAgent, fam: Family, arm: str, args: argparse.Namespace, seed: int
) -> dict[str, float]:
    """Success, return and the family's extra metrics on fresh held-out episodes, one per sub-env."""
    env = EpisodeReturn(fam.make_env(args.eval_episodes, 10_000 + seed, True))
    generator = make_generator(seed, "ablation/eval", agent.device)
    agent.backbone.eval()
    if arm in ("greedy", "sampled"):
        policy = BackbonePolicy(
            agent.backbone,
            action_token_ids=torch.as_tensor(fam.task.action_token_ids),
            greedy=arm == "greedy",
            generator=generator,
            mask_invalid=fam.mask,
            stream=fam.stream,
        )
    else:
        policy = agent.policy(generator=generator)
        policy.stream = fam.stream
    out = rollout(env, policy, seed=20_000 + seed)
    agent.backbone.train()
    result = {
        "success": float(out.final[fam.success_key].float().mean()),
        "reward": float(out.final["episode_return"].float().mean()),
    }
    result.update({k: float(out.final[k].float().mean()) for k in fam.extra_keys if k in out.final})
    if arm in ENGINE_ARMS:
        values = agent.engine.metrics()
        result.update({k: values[f"engine/{k}"] for k in ENGINE_VALUES if f"engine/{k}" in values})
    return result


def interleaved(agent: DualAgent, warm: float, cycle: int) -> Callable[[float], str]:
    """Supervised until ``warm`` seconds, then one RL step closing every cycle of ``cycle`` steps."""

    def phase(elapsed: float) -> str:
        if elapsed < warm:
            return "supervised"
        done = agent.counters["supervised"] + agent.counters["rl"]
        return "rl" if done % cycle == cycle - 1 else "supervised"

    return phase


def run_seed(fam: Family, args: argparse.Namespace, seed: int, device: torch.device, tb: Path | None) -> dict:
    """Every arm and schedule of one family at one seed: {cell name: metrics}."""
    seed_everything(seed)
    budget, rl_from = args.budget_s, (1.0 - args.rl_share) * args.budget_s
    results: dict[str, dict[str, float]] = {}
    env = fam.make_env(args.envs, seed + 1, False)

    def writer_for(cell: str) -> Any:
        if tb is None:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(tb / fam.name / cell / f"seed{seed}"))

    base = make_agent(fam, "greedy", args, seed, device)
    counts, snapshot = train(base, env, budget, lambda t: "supervised", snapshot_at=rl_from)
    for arm in ("greedy", "sampled"):
        results[arm] = {**evaluate(base, fam, arm, args, seed), "supervised_steps": counts["supervised"]}
    for arm in ENGINE_ARMS:
        for schedule in args.schedules:
            agent = make_agent(fam, arm, args, seed, device)
            writer = writer_for(f"{arm}-{schedule}")
            if schedule == "after":
                taken = snapshot or {
                    "state": base.backbone.state_dict(),
                    "steps": results["greedy"]["supervised_steps"],
                }
                agent.backbone.load_state_dict(taken["state"])
                counts = train(agent, env, budget - rl_from, lambda t: "rl", writer)[0]
                counts["supervised"] = taken["steps"]  # the snapshot's supervised steps
            else:
                phases = interleaved(agent, args.warmup * budget, args.sup_per_rl + 1)
                counts = train(agent, env, budget, phases, writer)[0]
            if writer is not None:
                writer.close()
            result = evaluate(agent, fam, arm, args, seed)
            results[f"{arm}-{schedule}"] = {
                **result,
                "supervised_steps": counts["supervised"],
                "rl_steps": counts["rl"],
            }
            print(f"  {fam.name} seed {seed} {arm}-{schedule}: {result}", flush=True)
    print(f"  {fam.name} seed {seed} greedy: {results['greedy']}", flush=True)
    return results


def warm_up(fam: Family, args: argparse.Namespace, device: torch.device) -> None:
    """A few untimed supervised and RL steps (kernel selection, allocator, the family's first env), so the
    first arm measured does not pay start-up costs out of its budget."""
    agent = make_agent(fam, "conditioned", args, 0, device)
    env = fam.make_env(args.envs, 0, False)
    for _ in range(3):
        agent.supervised_step()
        agent.rl_step(env)
    evaluate(agent, fam, "conditioned", args, 0)


def aggregate(per_seed: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """{cell: {metric: (mean, s.e.)}} over the seeds that report the metric."""
    cells: dict[str, dict[str, tuple[float, float]]] = {}
    for cell in per_seed[0]:
        keys = sorted({k for run in per_seed for k in run[cell]})
        cells[cell] = {k: mean_se([run[cell][k] for run in per_seed if k in run[cell]]) for k in keys}
    return cells


def markdown(family: str, cells: dict[str, dict[str, tuple[float, float]]], success_name: str) -> str:
    """One family's Markdown table: success, reward, the extra metrics and the engine's values."""
    extra = sorted({k for c in cells.values() for k in c} - {"success", "reward", *ENGINE_VALUES})
    engine = [k for k in ENGINE_VALUES if any(k in c for c in cells.values())]
    columns = ["success", "reward", *extra, *engine]
    header = [f"{family}: arm", f"{success_name} (success)", "reward", *extra[0:], *engine]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    greedy = cells["greedy"]["success"]
    for cell, values in cells.items():
        row = [cell]
        for key in columns:
            if key not in values:
                row.append("")
                continue
            mean, se = values[key]
            row.append(f"{mean:.3f} ± {se:.3f}" if "steps" not in key else f"{mean:.0f}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        f"greedy {success_name}: {greedy[0]:.3f} ± {greedy[1]:.3f}; an engine arm regresses when its mean is "
        "below greedy's by more than one standard error of the difference."
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--levels", nargs="*", default=[], help="family=level, e.g. maze=8x8 copy=len16-v16")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES)
    parser.add_argument("--budget-s", type=float, default=6.0, help="wall-clock seconds of training per arm")
    parser.add_argument("--rl-share", type=float, default=0.3, help="'after': share of the budget for RL")
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="'interleaved': supervised-only share first"
    )
    parser.add_argument(
        "--sup-per-rl", type=int, default=4, help="'interleaved': supervised steps per RL step"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--max-seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-sup-steps", type=int, default=20_000, help="length of the lr schedule")
    parser.add_argument("--rl-lr", type=float, default=0.03)
    parser.add_argument("--rollout-steps", type=int, default=40, help="env steps per RL rollout")
    parser.add_argument("--envs", type=int, default=32, help="sub-envs per RL rollout")
    parser.add_argument("--eval-episodes", type=int, default=256, help="fresh episodes per measurement")
    parser.add_argument("--no-mask", action="store_true", help="maze: do not mask illegal moves")
    parser.add_argument("--out", type=Path, default=None, help="folder for engine_ablation.json and tb/")
    args = parser.parse_args(argv)
    if not 0.0 < args.rl_share < 1.0 or not 0.0 <= args.warmup < 1.0:
        parser.error("--rl-share must lie in (0, 1) and --warmup in [0, 1).")
    if args.budget_s <= 0 or args.sup_per_rl < 0:
        parser.error("--budget-s must be > 0 and --sup-per-rl >= 0.")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    levels = dict(item.split("=", 1) for item in args.levels)
    unknown = set(levels) - set(FAMILIES)
    if unknown:
        raise SystemExit(
            f"--levels names unknown families {sorted(unknown)}; use family=level with {FAMILIES}."
        )
    tb = args.out / "tb" if args.out else None
    started = time.perf_counter()
    report: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "device": str(device),
        "families": {},
    }
    tables = []
    for name in args.families:
        fam = build_family(name, levels.get(name), device, mask=not args.no_mask)
        warm_up(fam, args, device)
        per_seed = [run_seed(fam, args, seed, device, tb) for seed in args.seeds]
        cells = aggregate(per_seed)
        metric = {"maze": "exact path", "text": "judge success"}.get(name, "exact match")
        tables.append(markdown(f"{name} ({fam.task.level.name})", cells, metric))
        report["families"][name] = {
            "level": fam.task.level.name,
            "per_seed": per_seed,
            "mean_se": {c: {k: list(v) for k, v in m.items()} for c, m in cells.items()},
        }
        print(tables[-1], flush=True)
        if args.out:  # after every family, so a run stopped by a time limit keeps what it measured
            write_report(report, args.out / "engine_ablation.json")
    minutes = (time.perf_counter() - started) / 60
    header = (
        f"engine ablation on {device}, {len(args.seeds)} seeds, {args.budget_s:g} s of training per arm, "
        f"{args.eval_episodes} fresh episodes per measurement, {minutes:.1f} minutes"
    )
    print("\n" + header + "\n\n" + "\n\n".join(tables))
    report["minutes"] = minutes
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_report(report, args.out / "engine_ablation.json")
        tmp = args.out / ".engine_ablation.md.tmp"
        tmp.write_text(header + "\n\n" + "\n\n".join(tables) + "\n")
        os.replace(tmp, args.out / "engine_ablation.md")
    return report


if __name__ == "__main__":
    main()
