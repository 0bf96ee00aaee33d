"""The seeds' own results beside MindGym's (issue 21), measured in parts that each fit one GPU call.

Parts (``--parts``; each saves ``<out>/parts/<part>.json``, and every call then prints and writes the
table of all parts saved under ``--out``: ``seed_fidelity.md`` and ``seed_fidelity.json``):

- ``bwr_dnc``: ``preset=bwr_dnc`` trained ``--bwr-minutes``, then copy accuracy per symbol and exact match
  at lengths 2, 6, 10, 32 (the seed: 37.2%, 22.8%, 14.1%, 10.0%), and the parameter count (seed ~799K).
- ``act_sweep`` (Cognate): forward time with every token halting after 1, 2, 3 steps and per-token
  halting, ``act_skip`` on and off (``bench.act_speed``'s sweep).
- ``act_variants`` (Cognate): each variant trained ``--act-train-steps``: ACT mean steps, share computed,
  bits per byte, forward time, and speed / reasoning forward time (the seed: the speed model fastest),
  the variants timed in interleaved rounds and compared round by round with a sign test
  (``bench.interleaved``; ``measurably_faster``: median ratio below 1 at p <= 0.05).
- ``agiformer``: ``preset=agiformer`` trained ``--agiformer-minutes``: validation bits per character (the
  seed: 1.78 on Turkish Wikipedia) and needle exact at 2,899 bytes (the seed's check failed).
- ``poh_hrm``, ``poh_baseline``: the seed's 12x12 protocol (400 fixed mazes, 30 epochs, 80 test mazes):
  solved and optimal (the seed: 63.16% / 54.39% and 57.89% / 52.63%; optimal as the seed counts it, solved
  within 1.05x of the shortest path: ``near_optimal``), exact shortest path (a row of its own, not in the
  seed) and parameters (7.04M / 7.21M).
- ``echo``: ``preset=echo`` trained ``--echo-minutes``: reward of the learned engine against fixed
  decodings on test prompts (the seed reported no figure).

Expected GPU minutes of each part on one H200 shared with one other job: ``--list`` prints them (each
part prints its own before it starts). Calls of at most 8 minutes:

    python -m bench.seed_fidelity --device cuda --out runs/sf --parts bwr_dnc act_sweep act_variants
    python -m bench.seed_fidelity --device cuda --out runs/sf --parts poh_hrm poh_baseline
    python -m bench.seed_fidelity --device cuda --out runs/sf --parts agiformer
    python -m bench.seed_fidelity --device cuda --out runs/sf --parts echo
    python -m bench.seed_fidelity --out runs/sf --combine        # the table of the saved parts

``--overrides PART:key=value`` (or ``key=value`` for every training part) passes runner overrides; the
CPU smoke run in tests/bench/test_seed_fidelity.py shrinks every part that way. Runs, checkpoints and
TensorBoard files go under ``<out>/runs/<part>``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from bench.harness import device_name
from bench.seed_fidelity_parts import BY_NAME, PART_NAMES, PARTS, split_override
from bench.seed_fidelity_record import (
    PartRecord,
    combine,
    load_parts,
    markdown,
    part_names,
    save_part,
    today,
    write_combined,
)
from foundation.device import resolve_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seed_fidelity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, required=True, help="parts/, runs/ and the combined table")
    parser.add_argument("--parts", nargs="+", default=[], help=f"some of {', '.join(PART_NAMES)}, or all")
    parser.add_argument("--combine", action="store_true", help="only print and write the saved parts' table")
    parser.add_argument("--list", action="store_true", help="print the parts and their expected minutes")
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="runner overrides: PART:key=value or key=value"
    )
    parser.add_argument(
        "--episodes", type=int, default=256, help="sequences per length / needle cell / prompts"
    )
    parser.add_argument("--bwr-minutes", type=float, default=3.0)
    parser.add_argument("--agiformer-minutes", type=float, default=3.0)
    parser.add_argument("--echo-minutes", type=float, default=3.0)
    parser.add_argument("--poh-max-minutes", type=float, default=4.0, help="a cap: the protocol is 375 steps")
    parser.add_argument("--act-train-steps", type=int, default=80)
    parser.add_argument("--act-seq-len", type=int, default=512)
    parser.add_argument("--act-batch", type=int, default=16)
    parser.add_argument("--act-repeats", type=int, default=10)
    parser.add_argument("--act-d-model", type=int, default=None, help="default: the preset's")
    parser.add_argument("--act-n-layers", type=int, default=None)
    parser.add_argument("--act-n-heads", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        args.parts = part_names(args.parts, PART_NAMES)
        for item in args.overrides:  # a misspelt PART: fails now, not after the parts before it ran
            split_override(item)
    except ValueError as err:
        parser.error(str(err))
    if not (args.parts or args.combine or args.list):
        parser.error(
            f"name the parts to measure (--parts {' '.join(PART_NAMES)} or all), --combine or --list."
        )
    return args


def part_command(args: argparse.Namespace, part: str) -> str:
    """The command line that measures ``part`` alone with this call's settings."""
    words = ["python", "-m", "bench.seed_fidelity", "--device", str(args.device), "--out", str(args.out)]
    words += ["--parts", part]
    for flag in BY_NAME[part].flags:
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if value is not None:
            words += [flag, str(value)]
    mine = [item for item in args.overrides if split_override(item)[0] in (None, part)]
    if mine and BY_NAME[part].trains_runner:
        words += ["--overrides", *mine]
    return shlex.join(words)


def expected_lines(args: argparse.Namespace, parts: list[str]) -> list[str]:
    lines = []
    for name in parts:
        part = BY_NAME[name]
        lines.append(f"  {name:<13} about {part.expected_minutes(args):4.1f} GPU min  ({part.about})")
    total = sum(BY_NAME[n].expected_minutes(args) for n in parts)
    lines.append(
        f"  {'in all':<13} about {total:4.1f} GPU min on one H200 shared with one other job (estimates)"
    )
    return lines


def run_part(args: argparse.Namespace, name: str, device: torch.device) -> PartRecord:
    """Measure one part and save it under ``--out``."""
    part = BY_NAME[name]
    print(
        f"[seed_fidelity] {name}: expected about {part.expected_minutes(args):.1f} GPU minutes ({part.about})"
    )
    started = time.perf_counter()
    rows = part.measure(args, device)
    record = PartRecord(
        part=name,
        rows=rows,
        device=device_name(device),
        date=today(),
        minutes=(time.perf_counter() - started) / 60,
        command=part_command(args, name),
        settings={"torch": torch.__version__, "python": sys.version.split()[0]},
    )
    path = save_part(args.out, record)
    print(f"[seed_fidelity] {name}: {record.minutes:.1f} minutes, saved {path}")
    return record


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.list:
        print("\n".join(["Parts and their expected GPU minutes:", *expected_lines(args, list(PART_NAMES))]))
        if not (args.parts or args.combine):
            return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.parts:
        device = resolve_device(args.device)
        print(
            "\n".join([f"[seed_fidelity] parts on {device_name(device)}:", *expected_lines(args, args.parts)])
        )
        for name in args.parts:
            run_part(args, name, device)
    commands = {p.name: part_command(args, p.name) for p in PARTS}
    combined = combine(load_parts(args.out), PART_NAMES)
    print("\nSeed fidelity (issue 21): the seeds' own results beside MindGym's\n")
    print(markdown(combined, commands))
    json_path, md_path = write_combined(args.out, combined, commands)
    print(f"\nWrote {md_path} and {json_path}")


if __name__ == "__main__":
    main()
