"""Throughput of the runners' steps: supervised step, RL step and one evaluation, per runner and device.

    python -m bench.runner_throughput --device cuda                        # all runners, hardware=gpu sizes
    python -m bench.runner_throughput --device cpu --runner maze --override backbone=hebbian
    python -m bench.runner_throughput --device cuda --runner generation --override preset=echo --no-record
    python -m bench.runner_throughput --device cuda --runner maze --override preset=maze_fast \
        --loop-steps 384 --supervised-only --no-record \
        --variant 'trainer.supervised.pad_multiple=16'         # training as the loop runs it, data included;
                                                               # a second row with that override added

Each runner's config is composed as the command line would (``hardware=gpu`` on CUDA, ``hardware=cpu``
otherwise, then ``--override``s); the table (tokens/s and steps/s of supervised steps, env steps/s and
seconds of RL steps, seconds per evaluation; ``first_step_s`` and ``rl_first_s``, the first of each kind,
include compiling on CUDA; ``graphs``, the torch.compile graphs built while measuring the row, shows
recompiles; ``peak_GiB``, the CUDA memory peak) is printed and, unless ``--no-record``, appended to
docs/benchmarks.md.

The supervised columns time the model step alone, on batches drawn beforehand. ``--loop-steps N`` adds
what a run's ``train/tokens_per_s`` and ``train/mfu`` measure: N training steps taken as ``runners.loop``
takes them (the sampler's draws included), timed in windows of ``max(prefetch_batches, 8)`` steps (one
prefetched draw each when ``prefetch_batches >= 8``; the median window, so a recompile for a new sequence
length does not count), and the split of a step's time into drawing its batch (the sampler alone, timed
the same way) and the rest. ``pad_pct`` is the share of the tokens a compiled step computes that are
padding (to the longest row, then to ``pad_multiple``), counted on one more window of batches drawn as the
loop draws them (so prefetching and ``trainer.supervised.bucket_by_length`` count); ``pad_widths``, how
many padded widths those batches have (a compiled step builds a graph per width until torch.compile turns
to dynamic shapes); ``real_tokens_per_s``, the loop's tokens/s less the rows' padding (the loop's tokens
are its batches' rows times their longest row's width). ``--profile-dir DIR`` also profiles one more window
of at most 32 loop steps per row (a draw among them when ``prefetch_batches <= 32``):
``DIR/<runner>_<row>.txt`` lists the ops by device time, ``.json`` is the timeline.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from agents.training.speed import peak_flops
from bench.harness import Benchmark, cuda_sync_for, runner_config
from envs.common import SupervisedBatch
from foundation import resolve_device, seed_everything
from runners.ddp import DistInfo
from runners.evaluate import EXPERIMENTS
from runners.experiment import AgentExperiment
from runners.logging import RunLogger

RUNNERS = tuple(EXPERIMENTS)


def measure(
    runner: str,
    device: torch.device,
    overrides: list[str],
    repeats: int,
    bench: Benchmark,
    loop_steps: int = 0,
    supervised_only: bool = False,
    profile_to: Path | None = None,
) -> None:
    """Time one runner's supervised step, RL step and evaluation (and, with ``loop_steps``, training as the
    loop runs it); add a row to ``bench``."""
    profile = "hardware=gpu" if device.type == "cuda" else "hardware=cpu"
    cfg = runner_config(
        runner, [profile, f"hardware.device={device}", "trainer.progress_bar=false", *overrides]
    )
    seed_everything(int(cfg.seed))
    if cfg.hardware.num_threads > 0:
        torch.set_num_threads(int(cfg.hardware.num_threads))
    experiment = EXPERIMENTS[runner](cfg, DistInfo(device=device))
    agent, sync = experiment.agent, cuda_sync_for(device)
    graphs_before = compiled_graphs()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batch_size = agent.sup_config.batch_size
    batches = [experiment.sampler.sample_batch(batch_size, device) for _ in range(4)]
    calls = iter(range(10**9))

    def supervised() -> None:
        agent.supervised_step(batches[next(calls) % len(batches)])

    first = bench.time(supervised, 0, 1, sync).median  # on CUDA it compiles: what a run's first step waits
    sup = bench.time(supervised, warmup=2, repeats=repeats, sync=sync)
    tokens = sum(b.tokens.numel() for b in batches) / len(batches)
    params = sum(p.numel() for p in agent.backbone.parameters())
    row: dict[str, object] = {
        "runner": runner,
        "overrides": " ".join(overrides) or "-",
        "params_M": params / 1e6,
        "batch": batch_size,
        "sup_steps_per_s": 1.0 / sup.median,
        "tokens_per_s": tokens / sup.median,
        "first_step_s": first,
    }
    if loop_steps > 0:
        row.update(loop_rates(experiment, loop_steps, device, sync, profile_to))
        row["model_ms"] = 1e3 * sup.median
    if not supervised_only:
        row["rl_first_s"] = bench.time(lambda: agent.rl_step(experiment.rl_env), 0, 1, sync).median
        rl = bench.time(
            lambda: agent.rl_step(experiment.rl_env), warmup=0, repeats=max(2, repeats // 5), sync=sync
        )
        row["rl_env_steps_per_s"] = agent.rl_config.rollout_steps * experiment.rl_env.num_envs / rl.median
        row["rl_step_s"] = rl.median
        row["eval_s"] = bench.time(
            lambda: experiment.evaluate(0, RunLogger("unused", enabled=False)), 0, 1, sync
        ).median
    row["graphs"] = compiled_graphs() - graphs_before
    if device.type == "cuda":
        row["peak_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
    bench.add(**row)


def compiled_graphs() -> int:
    """Graphs torch.compile has built in this process so far (each compile and recompile adds one)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def padded_width(batch: SupervisedBatch, multiple: int) -> int:
    """The width a step computes for ``batch``: its longest row rounded up to a multiple of ``multiple``."""
    return -(-batch.tokens.shape[1] // multiple) * multiple


def padding_share(batches: list[SupervisedBatch], multiple: int, pad_id: int) -> float:
    """Share of the tokens a step computes that are padding: rows padded to the longest, the batch to a
    multiple of ``multiple`` (the compiled step's ``pad_multiple``)."""
    real = sum(int((b.tokens != pad_id).sum()) for b in batches)
    computed = sum(b.tokens.shape[0] * padded_width(b, multiple) for b in batches)
    return 1.0 - real / computed


def padding_of_draws(experiment: AgentExperiment, batches: int, device: torch.device) -> dict[str, float]:
    """``pad_pct``, ``pad_widths`` and the share of a batch's tokens that are not padding (``real_share``)
    over ``batches`` batches drawn as the loop draws them (the agent's supervised generator)."""
    agent, sampler = experiment.agent, experiment.sampler
    multiple = agent.sup_config.pad_multiple if agent.supervised.plan != "none" else 1
    generator = agent.generators["supervised"]
    drawn = [sampler.sample_batch(agent.sup_config.batch_size, device, generator) for _ in range(batches)]
    real = sum(int((b.tokens != sampler.pad_id).sum()) for b in drawn)
    return {
        "pad_pct": 100.0 * padding_share(drawn, multiple, sampler.pad_id),
        "pad_widths": len({padded_width(b, multiple) for b in drawn}),
        "real_share": real / sum(b.tokens.numel() for b in drawn),
    }


def loop_rates(
    experiment: AgentExperiment,
    steps: int,
    device: torch.device,
    sync: Callable[[], None] | None,
    profile_to: Path | None = None,
) -> dict[str, float]:
    """``steps`` training steps as ``runners.loop`` takes them (``train_step``, then the curriculum's clock),
    in windows of ``max(prefetch, 8)`` steps (one prefetched draw each when the sampler prefetches 8 or
    more); then the sampler alone over up to 4 windows, and the padding of one more window's batches
    (:func:`padding_of_draws`). Returns the median window's tokens/s and MFU (the loop's
    ``train/tokens_per_s`` and ``train/mfu``), those tokens/s less the rows' padding, its milliseconds per
    step, of which ``data_ms`` drawing batches, and the padding. With ``profile_to`` (a path without
    suffix) one more window, cut to 32 steps (so it holds a draw when the sampler prefetches at most 32),
    runs under torch.profiler: its ops by device time go to ``<profile_to>.txt`` and the timeline to
    ``<profile_to>.json`` (Perfetto)."""
    agent, sampler = experiment.agent, experiment.sampler
    window = max(sampler.prefetch, 8)
    windows = max(steps // window, 1)
    peak = peak_flops(device)
    step = 0

    def run_window(count: int = window) -> tuple[float, float, float]:
        nonlocal step
        tokens = flops = 0.0
        start = time.perf_counter()
        for _ in range(count):
            out = experiment.train_step(step)
            experiment.curriculum.advance(1)
            tokens, flops, step = tokens + out.tokens, flops + out.flops, step + 1
        if sync:
            sync()
        return time.perf_counter() - start, tokens, flops

    run_window()  # compiles the step for the first lengths
    timed = sorted(run_window() for _ in range(windows))
    seconds, tokens, flops = timed[len(timed) // 2]

    def draw_window() -> float:
        start = time.perf_counter()
        for _ in range(window):
            sampler.sample_batch(agent.sup_config.batch_size, device, agent.generators["supervised"])
        if sync:
            sync()
        return time.perf_counter() - start

    if profile_to is not None:
        write_profile(lambda: run_window(min(window, 32)), profile_to, device)  # a draw, then its steps
    draws = sorted(draw_window() for _ in range(min(windows, 4)))
    padding = padding_of_draws(experiment, window, device)
    rates = {
        "pad_pct": padding["pad_pct"],
        "pad_widths": padding["pad_widths"],
        "loop_tokens_per_s": tokens / seconds,
        "real_tokens_per_s": tokens / seconds * padding["real_share"],
        "loop_ms": 1e3 * seconds / window,
        "data_ms": 1e3 * draws[len(draws) // 2] / window,
    }
    if peak:
        rates["loop_mfu_pct"] = 100.0 * flops / seconds / peak
    return rates


def write_profile(run: Callable[[], object], path: Path, device: torch.device) -> None:
    """Run ``run`` under torch.profiler; write its ops by self device time (CPU time on a CPU) to
    ``<path>.txt`` and the timeline to ``<path>.json``."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        run()
    path.parent.mkdir(parents=True, exist_ok=True)
    order = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.with_suffix(".txt").write_text(profiler.key_averages().table(sort_by=order, row_limit=40) + "\n")
    profiler.export_chrome_trace(str(path.with_suffix(".json")))
    print(f"profile of loop steps: {path.with_suffix('.txt')}, {path.with_suffix('.json')}")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--runner", choices=[*RUNNERS, "all"], default="all")
    parser.add_argument("--override", action="append", default=[], help="a Hydra override (repeatable)")
    parser.add_argument("--repeats", type=int, default=20, help="timed supervised steps")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs")
    parser.add_argument(
        "--loop-steps",
        type=int,
        default=0,
        help="also take this many training steps as the loop does (data included): loop tokens/s, MFU, "
        "and a step's milliseconds with the data's share",
    )
    parser.add_argument("--supervised-only", action="store_true", help="skip the RL step and evaluation")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="one more row per runner with these space-separated overrides on top of --override "
        "(repeatable), e.g. --variant 'trainer.supervised.pad_multiple=16'",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help="with --loop-steps: profile one more window of loop steps per row into this folder "
        "(<runner>_<row>.txt: ops by device time; .json: the timeline)",
    )
    args = parser.parse_args(argv)
    if args.profile_dir is not None and args.loop_steps == 0:
        parser.error("--profile-dir profiles loop steps: add --loop-steps N (e.g. --loop-steps 384).")
    if args.loop_steps < 0:
        parser.error(f"--loop-steps must be >= 0, got {args.loop_steps}.")
    device = resolve_device(args.device)
    bench = Benchmark("runner step throughput", device)
    variants = [[], *(variant.split() for variant in args.variant)]
    for runner in RUNNERS if args.runner == "all" else (args.runner,):
        for index, extra in enumerate(variants):
            profile = args.profile_dir / f"{runner}_{index}" if args.profile_dir is not None else None
            overrides = [*args.override, *extra]
            measure(
                runner, device, overrides, args.repeats, bench, args.loop_steps, args.supervised_only, profile
            )
    return bench.report(record=not args.no_record)


if __name__ == "__main__":
    main()
