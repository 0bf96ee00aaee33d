"""The parts of ``bench.seed_fidelity``: each measures one seed's own result in MindGym, in one GPU call.

Every part returns rows ``{seed, measure, seed_reported, mindgym, ...details}``; the seeds' figures are
from their write-ups in ../shared/seeds/ (000 BWR-DNC, 001 AGIFORMER, 002 Cognate, 003 PoH-HRM maze,
004 Echo Adventure). Parts that train do so through the runners (``runners.app.execute``, the preset's
own config), into ``<out>/runs/<part>``, replaced on every run of the part.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.backbones import build_backbone
from bench import act_speed
from bench.harness import train_runner
from envs.generation.corpus import default_corpus

# ------------------------------------------------------------------------------ the seeds' own figures
BWR_ACCURACY = {2: 0.372, 6: 0.228, 10: 0.141, 32: 0.100}  # 000: difficulty 1, 3, 5, 10 = length 2, 6, 10, 32
BWR_PARAMETERS = 799_000  # 000: "799K parameters" (~800K)
AGIFORMER_BEST_VAL_BPC = 1.78  # 001: Turkish Wikipedia, 20K steps, 50 minutes on its GPU
AGIFORMER_NEEDLE = 0.0  # 001: the key "1453" in 2,899 bytes: "FAILURE - information lost in noise"
COGNATE_PARAMETERS = 26_974_561  # 002: TRM x Titans-MAG, vocabulary 32,768
POH_SEED = {  # 003: 12x12, 400 training mazes, 30 epochs, 57 test mazes kept of 80; "optimal" = solved within
    # 1.05x of the shortest path's cells (Eran-BA/PoT experiments/run_12x12_8m_benchmark.py, evaluate):
    # MindGym's near_optimal (envs.maze.evaluate.near_optimal)
    "poh_hrm": {"solved": 0.6316, "optimal": 0.5439, "parameters": 7_040_000},
    "poh_baseline": {"solved": 0.5789, "optimal": 0.5263, "parameters": 7_210_000},
}
ECHO_SEED = "none reported (no training loop; its engine sat on GPT-2)"  # 004


@dataclass(frozen=True)
class Part:
    """A part: how it measures (its rows name their seed) and its GPU minutes on one H200 shared with one
    other job."""

    name: str
    measure: Callable[[argparse.Namespace, torch.device], list[dict[str, Any]]]
    expected_minutes: Callable[[argparse.Namespace], float]
    flags: tuple[str, ...]  # the command-line options this part reads (its command in the report)
    about: str
    trains_runner: bool = True  # trains through a runner, so --overrides reach it


# ------------------------------------------------------------------------------ shared steps
def split_override(item: str) -> tuple[str | None, str]:
    """An ``--overrides`` item as (its part, the runner override): ``echo:key=value`` -> ("echo",
    "key=value"); ``key=value`` (a colon only after the ``=``, as in ``task.corpus=hf:x``) -> (None, item)."""
    head, sep, rest = item.partition(":")
    if sep and "=" not in head:
        if head not in PART_NAMES:
            raise ValueError(
                f"--overrides {item}: no part {head!r}; write PART:key=value with PART one of "
                f"{', '.join(PART_NAMES)}, or key=value for every training part."
            )
        return head, rest
    return None, item


def part_overrides(args: argparse.Namespace, part: str) -> list[str]:
    """``--overrides`` for ``part``: ``PART:key=value`` items for it, and plain ``key=value`` items."""
    return [override for head, override in map(split_override, args.overrides) if head in (None, part)]


def train(
    runner: str, preset: str, minutes: float | None, device: torch.device, run_dir: Path, extra: list[str]
) -> dict[str, Any]:
    """Train ``preset`` with its runner into ``run_dir`` (emptied first), for at most ``minutes`` of wall
    clock (None: the preset's own steps); returns the run's report (steps, steps_done, stopped_early)."""
    return train_runner(runner, [f"preset={preset}", *extra], device, run_dir, minutes)


def trained(run_dir: Path, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """The experiment of ``run_dir``'s latest checkpoint, weights loaded; (experiment, checkpoint state)."""
    from runners.evaluate import load_experiment

    return load_experiment(run_dir / "checkpoints" / "latest.pt", str(device))


def run_of(report: dict[str, Any], minutes: float) -> dict[str, Any]:
    """The details every training part adds to its rows: steps done of the run's steps, wall minutes."""
    return {"step": f"{report['steps_done']} of {report['steps']}", "minutes": minutes}


def since(started: float) -> float:
    return (time.perf_counter() - started) / 60


# ------------------------------------------------------------------------------ bwr_dnc
def bwr_dnc(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """``preset=bwr_dnc`` trained ``--bwr-minutes``, then copy accuracy per symbol and exact match at the
    seed's lengths on ``--episodes`` fresh sequences each."""
    started = time.perf_counter()
    run_dir = args.out / "runs" / "bwr_dnc"
    report = train("recall", "bwr_dnc", args.bwr_minutes, device, run_dir, part_overrides(args, "bwr_dnc"))
    minutes = since(started)
    experiment, _ = trained(run_dir, device)
    results = experiment.full_evaluation(episodes=args.episodes)
    rows = []
    for length, seed_accuracy in BWR_ACCURACY.items():
        name = f"len{length}-v32"
        rows.append(
            {
                "seed": "bwr_dnc",
                "measure": f"copy accuracy per symbol, length {length}",
                "seed_reported": seed_accuracy,
                "mindgym": results["accuracy"].get(name),
                "exact_match": results["exact_match"].get(name),
                **run_of(report, minutes),
            }
        )
    rows.append(
        {
            "seed": "bwr_dnc",
            "measure": "parameters",
            "seed_reported": BWR_PARAMETERS,
            "mindgym": experiment.n_params,
        }
    )
    return rows


# ------------------------------------------------------------------------------ cognate (ACT)
def act_args(args: argparse.Namespace) -> argparse.Namespace:
    """The settings bench.act_speed reads, from this command's ``--act-*`` options."""
    return argparse.Namespace(
        d_model=args.act_d_model,
        n_layers=args.act_n_layers,
        n_heads=args.act_n_heads,
        seq_len=args.act_seq_len,
        batch=args.act_batch,
        train_steps=args.act_train_steps,
        compile="none",
        seed=0,
        warmup=2,
        repeats=args.act_repeats,
    )


def held_out_bytes(ns: argparse.Namespace, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return act_speed.byte_windows(default_corpus().text("validation"), ns.batch, ns.seq_len, generator).to(
        device
    )


def act_sweep(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Cognate forward time with every token halting after 1, 2, 3 steps and with per-token halting,
    halted tokens skipping their passes (``act_skip``) or not."""
    ns = act_args(args)
    table = act_speed.sweep(ns, device, held_out_bytes(ns, device)[:, :-1])
    by_setting: dict[str, dict[bool, dict[str, Any]]] = {}
    for row in table.rows:
        by_setting.setdefault(row["halting"], {})[row["act_skip"]] = row
    return [
        {
            "seed": "cognate",
            "measure": f"forward ms, {halting}, halted tokens skip (act_skip)",
            "seed_reported": None,
            "mindgym": rows[True]["forward_ms"],
            "forward_iqr_ms": rows[True]["forward_iqr_ms"],
            "act_skip_off_ms": rows[False]["forward_ms"],
            "skip_on_over_off": rows[True]["skip_on_over_off"],  # paired by round
            "steps_mean": rows[True]["steps_mean"],
            "computed": rows[True]["computed"],
            "rows_share": rows[True]["rows_share"],
            **act_setting(ns, device),
        }
        for halting, rows in by_setting.items()
    ]


def act_setting(ns: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """What an ACT timing ran on: tokens per forward, timed rounds, and CPU threads (on the CPU)."""
    threads = {"threads": torch.get_num_threads()} if device.type == "cpu" else {}
    return {"tokens": f"{ns.batch} x {ns.seq_len}", "rounds": ns.repeats, **threads}


VARIANT_ROLES = {
    "reasoning": "thinks longest (highest halting steps), slower",
    "memory": "balanced speed/quality",
    "speed": "lowest halting steps, fastest",
}  # 002's "Model Diversity Validation"


def act_variants(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """Each Cognate variant trained ``--act-train-steps`` (same initial weights, same batches), then on the
    same held-out bytes its ACT mean steps, share of feed-forward rows really computed, bits per byte and
    forward time (variants timed in interleaved rounds); and the speed model's forward time over the
    reasoning model's, paired round by round, with a sign test (the seed calls the speed model the
    fastest): ``measurably_faster`` is a median ratio below 1 at p <= 0.05."""
    ns = act_args(args)
    started = time.perf_counter()
    result = act_speed.variants(ns, device, held_out_bytes(ns, device))
    table, ratio = result.bench, result.ratio("speed", "reasoning")
    minutes = since(started)
    rows = [
        {
            "seed": "cognate",
            "measure": f"cognate_{row['variant']}: ACT mean steps after {ns.train_steps} steps",
            "seed_reported": VARIANT_ROLES[row["variant"]],
            "mindgym": row["steps_mean"],
            "forward_ms": row["forward_ms"],
            "forward_iqr_ms": row["forward_iqr_ms"],
            "ms_per_step": row["ms_per_step"],
            "computed": row["computed"],
            "rows_share": row["rows_share"],
            "bits_per_byte": row["bits_per_byte"],
            "minutes": minutes,
            **act_setting(ns, device),
        }
        for row in table.rows
    ]
    model = build_backbone(act_speed.variant_config("cognate_reasoning", ns))
    rows.append(
        {
            "seed": "cognate",
            "measure": "parameters (seed: 32,768-token vocabulary; here: bytes)",
            "seed_reported": COGNATE_PARAMETERS,
            "mindgym": sum(p.numel() for p in model.parameters()),
        }
    )
    rows.append(
        {
            "seed": "cognate",
            "measure": "forward time, speed variant / reasoning variant (median of per-round ratios)",
            "seed_reported": "speed fastest (< 1)",
            "mindgym": ratio.median,
            "ratio_range": f"{ratio.low:.3f}-{ratio.high:.3f}",
            "speed_faster_rounds": f"{ratio.faster} of {ratio.rounds}",
            "sign_test_p": ratio.p_value,
            "measurably_faster": ratio.measurably_faster(),
            **act_setting(ns, device),
        }
    )
    return rows


# ------------------------------------------------------------------------------ agiformer
def agiformer(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """``preset=agiformer`` trained ``--agiformer-minutes`` (supervised steps only: ``agiformer_overrides``),
    then validation bits per character (at the preset's ``task.train_window``) and the needle exact rate
    at 2,899 bytes of haystack (depths 0, 0.5, 1)."""
    from runners.cross_eval import SEED_NEEDLE_BYTES, needle_levels, needle_scores

    started = time.perf_counter()
    run_dir = args.out / "runs" / "agiformer"
    extra = agiformer_overrides(args)
    report = train("generation", "agiformer", args.agiformer_minutes, device, run_dir, extra)
    minutes = since(started)
    experiment, _ = trained(run_dir, device)
    backbone = experiment.agent.backbone.eval()
    levels = needle_levels([SEED_NEEDLE_BYTES], [0.0, 0.5, 1.0])
    scores = needle_scores(backbone, levels, args.episodes, device)
    return [
        {
            "seed": "agiformer",
            "measure": "validation bits per character (seed: Turkish Wikipedia; here: the embedded corpus)",
            "seed_reported": AGIFORMER_BEST_VAL_BPC,
            "mindgym": experiment.bits_per_char("validation"),
            **run_of(report, minutes),
        },
        {
            "seed": "agiformer",
            "measure": f"needle exact at {SEED_NEEDLE_BYTES} bytes (depths 0, 0.5, 1)",
            "seed_reported": AGIFORMER_NEEDLE,
            "mindgym": sum(r["exact"] for r in scores) / len(scores),
            "digit_accuracy": sum(r["accuracy"] for r in scores) / len(scores),
            "episodes": sum(r["episodes"] for r in scores),
        },
    ]


AGIFORMER_BACKBONE_ONLY = ("engine.interleave.rl_steps=0",)
"""The seed trained its byte model alone and both rows score the backbone, so the part's minutes go to
supervised steps: the generation runner's engine RL steps (one in ten after 300 steps) are off."""


def agiformer_overrides(args: argparse.Namespace) -> list[str]:
    """The agiformer part's runner overrides: backbone training only, then ``--overrides`` (which may
    turn the RL steps back on, e.g. ``agiformer:engine.interleave.rl_steps=1``)."""
    return [*AGIFORMER_BACKBONE_ONLY, *part_overrides(args, "agiformer")]


# ------------------------------------------------------------------------------ poh_hrm, poh_baseline
def poh(preset: str) -> Callable[[argparse.Namespace, torch.device], list[dict[str, Any]]]:
    """The part for ``preset`` (poh_hrm or poh_baseline): the seed's 12x12 protocol as the preset sets it
    (400 fixed training mazes, 30 epochs = 375 steps, 80 test mazes), then solved, the seed's "optimal"
    (``near_optimal``: solved within 1.05x of the shortest path) and the exact shortest path (which the
    seed does not report) on the test mazes; ``--poh-max-minutes`` caps the training."""

    def measure(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
        started = time.perf_counter()
        run_dir = args.out / "runs" / preset
        report = train("maze", preset, args.poh_max_minutes, device, run_dir, part_overrides(args, preset))
        minutes = since(started)
        experiment, _ = trained(run_dir, device)
        results = experiment.full_evaluation()
        level = next(iter(results["success"]))
        seed = POH_SEED[preset]
        common = {"test_mazes": results["test_mazes"][level], **run_of(report, minutes)}
        return [
            {
                "seed": "poh_hrm",
                "measure": f"{preset}: {level} solved",
                "seed_reported": seed["solved"],
                "mindgym": results["success"][level],
                **common,
            },
            {
                "seed": "poh_hrm",
                "measure": f"{preset}: {level} optimal (solved within 1.05x of the shortest path)",
                "seed_reported": seed["optimal"],
                "mindgym": results["near_optimal"][level],
                **common,
            },
            {
                "seed": "poh_hrm",
                "measure": f"{preset}: {level} exact shortest path (not reported by the seed)",
                "seed_reported": None,
                "mindgym": results["exact_path"][level],
                **common,
            },
            {
                "seed": "poh_hrm",
                "measure": f"{preset}: parameters",
                "seed_reported": seed["parameters"],
                "mindgym": experiment.n_params,
            },
        ]

    return measure


# ------------------------------------------------------------------------------ echo
def starting_engine(engine: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``engine`` at the values it started training from (its knobs' defaults, no per-step
    offsets): the fixed decoding the learned engine is compared with."""
    fixed = copy.deepcopy(engine)
    with torch.no_grad():
        for name in ("raw_temperature", "raw_top_p", "raw_penalty", "raw_layer_weights", "raw_head_weights"):
            getattr(fixed, name).copy_(getattr(fixed, f"default_{name}"))
        if getattr(fixed, "conditioned", False):
            fixed.condition[-1].weight.zero_()
            fixed.condition[-1].bias.zero_()
    return fixed


def echo(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    """``preset=echo`` (backbone + conditioned engine trained by REINFORCE) trained ``--echo-minutes``, then
    the reward of ``--episodes`` continuations of test-split prompts at the ladder's last level, decoded
    by the learned engine and by fixed decodings, same prompts and sampling seed for each."""
    from agents.rollout import BackbonePolicy
    from bench.engine_decoding import FixedDecoding
    from envs.generation.reward import reward_means
    from foundation.seeding import make_generator
    from runners.generation import build_task

    started = time.perf_counter()
    run_dir = args.out / "runs" / "echo"
    report = train("generation", "echo", args.echo_minutes, device, run_dir, part_overrides(args, "echo"))
    minutes = since(started)
    experiment, _ = trained(run_dir, device)
    agent, seed = experiment.agent, 1234
    env = experiment.make_vector_env(args.episodes, seed, build_task(experiment.cfg, "test"))
    level = len(experiment.task.ladder) - 1

    def through(engine: torch.nn.Module) -> BackbonePolicy:
        """A sampling policy through ``engine`` with the agent's features, same sampling seed each time."""
        generator = make_generator(seed, "bench/seed_fidelity/echo", device)
        return BackbonePolicy(
            agent.backbone,
            engine,
            generator=generator,
            mask_invalid=agent.rl.mask_invalid,
            features=agent.rl.features,
        )

    decodings: list[tuple[str, Callable[[], BackbonePolicy]]] = [
        ("learned engine (sampled)", lambda: through(agent.engine)),
        ("engine at its starting values, fixed (sampled)", lambda: through(starting_engine(agent.engine))),
        (
            "fixed T=1, top-p 0.9 (sampled)",
            lambda: through(FixedDecoding([(1.0, 0.9, 1.0)], env.num_envs, env, device)),
        ),
        ("greedy arg-max of the backbone", agent.backbone_policy),
    ]
    learned = {k.removeprefix("engine/"): v for k, v in agent.engine.metrics().items()}
    learned = {k: learned[k] for k in ("temperature", "top_p", "repetition_penalty") if k in learned}
    rows = []
    for name, policy in decodings:
        means = reward_means(experiment.play(env, level, policy(), seed).final)
        rows.append(
            {
                "seed": "echo",
                "measure": f"reward, {name}, {experiment.task.ladder[level].name}",
                "seed_reported": ECHO_SEED if not rows else None,
                "mindgym": float(means["reward"]),
                "fluency": float(means.get("reward_fluency", float("nan"))),
                "success": float(means["success"]),
                "episodes": env.num_envs,
                **run_of(report, minutes),
                **(learned if not rows else {}),
            }
        )
    return rows


# ------------------------------------------------------------------------------ the parts
# Expected GPU minutes on one H200 shared with one other job: the training budget plus start-up and
# evaluation. Estimates, not measurements of these settings: from the runs on an H200 shared with two other
# jobs in docs/results.md (poh_hrm 742 steps in 3 minutes, poh_baseline 1,263, so the protocol's 375 steps
# take about 1.5 and 0.9 minutes; evaluating both on the 80 test mazes took 71 s) and bench.act_speed's
# docstring (3 variants x 300 steps and the sweep: about 3 minutes, so about 0.4 s a variant step shared).
ACT_FLAGS = (  # what bench.act_speed reads
    "--act-seq-len",
    "--act-batch",
    "--act-repeats",
    "--act-d-model",
    "--act-n-layers",
    "--act-n-heads",
)
PARTS = (
    Part(
        "bwr_dnc",
        bwr_dnc,
        lambda a: a.bwr_minutes + 0.7,
        ("--bwr-minutes", "--episodes"),
        "preset=bwr_dnc for --bwr-minutes, copy accuracy at lengths 2, 6, 10, 32",
    ),
    Part(
        "act_sweep",
        act_sweep,
        lambda a: 0.5,
        ACT_FLAGS,
        "Cognate forward time against ACT steps, act_skip on and off",
        trains_runner=False,
    ),
    Part(
        "act_variants",
        act_variants,
        lambda a: 0.5 + 3 * a.act_train_steps * 0.4 / 60,
        ("--act-train-steps", *ACT_FLAGS),
        "each Cognate variant trained --act-train-steps: ACT steps, forward time",
        trains_runner=False,
    ),
    Part(
        "agiformer",
        agiformer,
        lambda a: a.agiformer_minutes + 1.0,
        ("--agiformer-minutes", "--episodes"),
        "preset=agiformer for --agiformer-minutes: bits per character, needle at 2,899 bytes",
    ),
    Part(
        "poh_hrm",
        poh("poh_hrm"),
        lambda a: min(2.0, a.poh_max_minutes) + 2.0,
        ("--poh-max-minutes",),
        "preset=poh_hrm, the seed's 30-epoch protocol: solved / within 1.05x / exact on 80 test mazes",
    ),
    Part(
        "poh_baseline",
        poh("poh_baseline"),
        lambda a: min(1.0, a.poh_max_minutes) + 1.5,
        ("--poh-max-minutes",),
        "preset=poh_baseline, the same protocol",
    ),
    Part(
        "echo",
        echo,
        lambda a: a.echo_minutes + 1.0,
        ("--echo-minutes", "--episodes"),
        "preset=echo for --echo-minutes: reward of the learned engine against fixed decodings",
    ),
)
PART_NAMES = tuple(p.name for p in PARTS)
BY_NAME = {p.name: p for p in PARTS}
