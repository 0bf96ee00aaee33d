"""Can the generation judge be gamed? Score real English against degraded versions of it, window by window.

    python -m bench.judge_quality                              # default held-out English domains
    python -m bench.judge_quality --domains licences sympy     # named domains (envs.generation.english)
    python -m bench.judge_quality --text notes.txt --text my_docs/   # your own text (files or folders)

Each text set is cut into 256-byte windows (``--window``), each after ``--prompt`` bytes of the same text
that serve as the prompt, as in the env. Every window is scored by the TextQuality task's reward
(``TextQualityTask()`` with its default judge, weights and success threshold; ``--order`` picks the
n-gram order) as the continuation of its prompt, together with five degraded versions of the same length
after the same prompt:

- words shuffled: the window's whitespace-separated words in a random order (whitespace kept in place);
- bytes shuffled: the window's bytes in a random order;
- one phrase repeated: the window's first six words, repeated to fill the window;
- random bytes: uniform over 0..255;
- random letters: lowercase a-z and spaces (one in six), uniformly at random.

The table gives each variant's mean fluency and word order (and the bits per byte and per word start
behind them), diversity, repetition and score, the fraction of its windows counted as success, and the
fraction of windows where real text scores above it (and, for the degenerate variants, where
word-shuffled text does). Targets (issue #23), on English prose from domains
outside the judge's corpus: real > word-shuffled in >= 99% of windows; every degenerate variant below
word-shuffled on average with <= 1% success; >= 80% of real windows a success.

The default text set is ``EVALUATION_DOMAINS`` of :mod:`envs.generation.english` (harvested from the
installation; the judge is not fitted and the reward not calibrated on them, but the reward's weights,
bands and success fraction were chosen with their results in view: docs/generation.md). ``--no-record``
prints only.

``--success-fractions 0.9 0.95 0.97`` adds a table of what other calibrated thresholds would do: for each
share of held-out human calibration text that should succeed, the threshold it calibrates to and the
success rate of real and of word-shuffled windows per text set (the trade-off behind the default).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence

import torch

from bench.harness import Benchmark
from envs.generation.corpus import documents_from_path
from envs.generation.english import EVALUATION_DOMAINS, domain_documents
from envs.generation.reward import score_continuations
from envs.generation.task import TextQualityTask

VARIANTS = (
    "real text",
    "words shuffled",
    "bytes shuffled",
    "one phrase repeated",
    "random bytes",
    "random letters",
)
DEGENERATE = ("bytes shuffled", "one phrase repeated", "random bytes", "random letters")
_SPLIT = re.compile(rb"(\s+)")


def windows_of(documents: Sequence[str], prompt: int, window: int, max_windows: int) -> torch.Tensor:
    """Up to ``max_windows`` non-overlapping (prompt + window)-byte slices of the documents joined by blank
    lines, evenly spaced through the text: (N, prompt + window) uint8."""
    data = "\n\n".join(documents).encode("utf-8")
    span = prompt + window
    count = len(data) // span
    if count == 0:
        raise ValueError(f"The text has {len(data)} bytes, fewer than one prompt + window ({span}).")
    picks = torch.linspace(0, count - 1, min(count, max_windows)).round().long().unique()
    flat = torch.frombuffer(bytearray(data[: count * span]), dtype=torch.uint8).view(count, span)
    return flat[picks]


def shuffle_words(window: bytes, generator: torch.Generator) -> bytes:
    parts = _SPLIT.split(window)
    words = [p for p in parts[0::2]]
    order = torch.randperm(len(words), generator=generator).tolist()
    parts[0::2] = [words[i] for i in order]
    return b"".join(parts)


def repeat_phrase(window: bytes) -> bytes:
    phrase = b" ".join(window.split()[:6]) + b" "
    return (phrase * (len(window) // len(phrase) + 1))[: len(window)]


def variants_of(windows: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """The real windows (N, W) and their five degraded versions, each (N, W) int64 bytes."""
    generator = torch.Generator().manual_seed(seed)
    real = windows.long()
    rows = [bytes(row.tolist()) for row in windows.to(torch.uint8)]

    def per_row(fn: Callable[[bytes], bytes]) -> torch.Tensor:
        return torch.tensor([list(fn(row)) for row in rows], dtype=torch.long)

    letters = torch.randint(ord("a"), ord("z") + 1, real.shape, generator=generator)
    spaces = torch.rand(real.shape, generator=generator) < 1 / 6
    return {
        "real text": real,
        "words shuffled": per_row(lambda row: shuffle_words(row, generator)),
        "bytes shuffled": real.gather(1, torch.rand(real.shape, generator=generator).argsort(dim=1)),
        "one phrase repeated": per_row(repeat_phrase),
        "random bytes": torch.randint(0, 256, real.shape, generator=generator),
        "random letters": torch.where(spaces, ord(" "), letters),
    }


def score_windows(
    task: TextQualityTask, prompts: torch.Tensor, texts: torch.Tensor, batch: int = 512
) -> dict[str, torch.Tensor]:
    """The reward's components, ``score`` and ``success`` of each text after its prompt."""
    parts: list[dict[str, torch.Tensor]] = []
    for i in range(0, len(texts), batch):
        parts.append(
            score_continuations(
                task.scorer,
                task.calibration,
                prompts[i : i + batch],
                texts[i : i + batch],
                task.reward_config,
            )
        )
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def success_threshold(task: TextQualityTask, length: int) -> float:
    config = task.reward_config
    table = task.calibration.threshold(config.weights, config.success_fraction)
    return float(table[min(length, len(table) - 1)])


def judge_text_set(
    task: TextQualityTask, windows: torch.Tensor, prompt: int, seed: int = 0
) -> dict[str, dict[str, torch.Tensor]]:
    """Scores of every variant of ``windows`` (N, prompt + window): variant -> component -> (N,)."""
    prompts = windows[:, :prompt].long()
    return {
        name: score_windows(task, prompts, texts)
        for name, texts in variants_of(windows[:, prompt:], seed).items()
    }


def summary_rows(scores: dict[str, dict[str, torch.Tensor]]) -> list[dict[str, object]]:
    real, shuffled = scores["real text"]["score"], scores["words shuffled"]["score"]
    rows = []
    for name in VARIANTS:
        s = scores[name]
        row: dict[str, object] = {
            "text": name,
            "fluency": float(s["fluency"].mean()),
            "word_order": float(s["word_order"].mean()),
            "bits_per_byte": float(s["bits_per_byte"].mean()),
            "word_start_bits": float(s["word_start_bits"].mean()),
            "diversity": float(s["diversity"].mean()),
            "repetition": float(s["repetition"].mean()),
            "distinct_2": float(s["distinct_2"].mean()) if "distinct_2" in s else "",
            "seq_rep_4": float(s["seq_rep_4"].mean()) if "seq_rep_4" in s else "",
            "score": float(s["score"].mean()),
            "success": _percent(s["success"]),
            "real_beats_it": "" if name == "real text" else _percent(real > s["score"]),
            "shuffled_beats_it": _percent(shuffled > s["score"]) if name in DEGENERATE else "",
        }
        rows.append(row)
    return rows


def _percent(flags: torch.Tensor) -> str:
    return f"{100 * float(flags.float().mean()):.1f}%"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", nargs="+", default=None, help="English domains (default: evaluation)")
    parser.add_argument("--text", action="append", default=[], help="a text file or folder (repeatable)")
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--max-windows", type=int, default=500, help="per text set")
    parser.add_argument("--order", type=int, default=None, help="n-gram order of the judge (default: task's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="print only, record nothing")
    parser.add_argument(
        "--success-fractions", nargs="*", type=float, default=[],
        help="also tabulate real and word-shuffled success under thresholds calibrated at these fractions",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = TextQualityTask(**({} if args.order is None else {"order": args.order}))
    sets: dict[str, list[str]] = {}
    for path in args.text:
        sets[path] = documents_from_path(path)
    if args.domains is not None or not args.text:
        for name in args.domains or EVALUATION_DOMAINS:
            sets[name] = domain_documents(name)

    per_set = {}
    all_scores: dict[str, dict[str, list[torch.Tensor]]] = {}
    for name, documents in sets.items():
        windows = windows_of(documents, args.prompt, args.window, args.max_windows)
        scores = judge_text_set(task, windows, args.prompt, args.seed)
        per_set[name] = (len(windows), scores)
        for variant, comps in scores.items():
            for key, value in comps.items():
                all_scores.setdefault(variant, {}).setdefault(key, []).append(value)
    merged = {v: {k: torch.cat(t) for k, t in comps.items()} for v, comps in all_scores.items()}
    total = sum(n for n, _ in per_set.values())

    bench = Benchmark(f"judge quality: {total} windows of {args.window} bytes from {', '.join(sets)}")
    for row in summary_rows(merged):
        bench.add(**row)
    by_set = Benchmark("judge quality by text set (real text)")
    for name, (count, scores) in per_set.items():
        real, shuffled = scores["real text"], scores["words shuffled"]
        by_set.add(
            text_set=name,
            windows=count,
            bits_per_byte=float(real["bits_per_byte"].mean()),
            fluency=float(real["fluency"].mean()),
            word_start_bits=float(real["word_start_bits"].mean()),
            word_order=float(real["word_order"].mean()),
            score=float(real["score"].mean()),
            success=_percent(real["success"]),
            real_beats_words_shuffled=_percent(real["score"] > shuffled["score"]),
        )
    print(
        f"judge: order {task.order}, success threshold {success_threshold(task, args.window):.3f}, "
        f"weights {dict(task.reward_config.weights)}"
    )
    bench.report(record=not args.no_record)
    by_set.report(record=not args.no_record)
    if args.success_fractions:
        fractions_table(task, per_set, merged, args.window, args.success_fractions).report(
            record=not args.no_record
        )


def fractions_table(
    task: TextQualityTask,
    per_set: dict[str, tuple[int, dict[str, dict[str, torch.Tensor]]]],
    merged: dict[str, dict[str, torch.Tensor]],
    window: int,
    fractions: Sequence[float],
) -> Benchmark:
    """Real and word-shuffled success under the threshold each ``success_fraction`` calibrates to."""
    table = Benchmark("judge quality: success under other calibrated thresholds (real / words shuffled)")
    weights = task.reward_config.weights
    for fraction in fractions:
        if not 0.0 < fraction <= 1.0:
            raise SystemExit(f"--success-fractions takes values in (0, 1], got {fraction}.")
        thresholds = task.calibration.threshold(weights, fraction)
        threshold = float(thresholds[min(window, len(thresholds) - 1)])
        row: dict[str, object] = {"success_fraction": fraction, "threshold": threshold}
        for name, scores in [("all", merged), *((n, s) for n, (_, s) in per_set.items())]:
            real, shuffled = scores["real text"]["score"], scores["words shuffled"]["score"]
            row[name] = f"{_percent(real >= threshold)} / {_percent(shuffled >= threshold)}"
        table.add(**row)
    return table


if __name__ == "__main__":
    main()
