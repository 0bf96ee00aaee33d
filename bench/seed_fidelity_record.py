"""Saved parts of ``bench.seed_fidelity`` and the one table they combine into.

Each part (``bwr_dnc``, ``poh_hrm``, ...) is measured in its own call and saved as
``<out>/parts/<part>.json``: its rows (one measure each: the seed's reported figure beside MindGym's), the
device, date, minutes and the command that measured it. :func:`combine` reads every saved part under
``<out>`` and builds the combined table, seed by seed, naming the seeds that have no row yet and the part
that gives them one, so parts run in separate GPU calls (or on separate days) make one report.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.report import write_report

SEEDS = ("bwr_dnc", "agiformer", "cognate", "poh_hrm", "echo")
"""The five systems MindGym grew from (../shared/seeds/000-004), in the order the table lists them."""

ROW_KEYS = ("seed", "measure", "seed_reported", "mindgym")
"""Every row has these; anything else it carries is printed in the table's details column."""


@dataclass
class PartRecord:
    """One part's measurement as saved: its rows and where, when and how they were measured."""

    part: str
    rows: list[dict[str, Any]]
    device: str
    date: str
    minutes: float
    command: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.rows:
            missing = [key for key in ROW_KEYS if key not in row]
            if missing:
                raise ValueError(f"Part {self.part!r} has a row without {missing}: {row}.")
            if row["seed"] not in SEEDS:
                raise ValueError(
                    f"Part {self.part!r} has a row for unknown seed {row['seed']!r}; seeds: {SEEDS}."
                )


def today() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def parts_folder(out: Path) -> Path:
    return Path(out) / "parts"


def save_part(out: Path, record: PartRecord) -> Path:
    """Write ``record`` to ``<out>/parts/<part>.json`` atomically, replacing an earlier run of that part."""
    return write_report(record.__dict__, parts_folder(out) / f"{record.part}.json")


def load_parts(out: Path) -> dict[str, PartRecord]:
    """Every part saved under ``out``, by name; a file that is not a part record fails with its path."""
    records: dict[str, PartRecord] = {}
    for path in sorted(parts_folder(out).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            record = PartRecord(**data)
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise ValueError(
                f"{path} is not a saved seed-fidelity part ({err}); delete it or run that part again "
                f"(python -m bench.seed_fidelity --out {out} --parts {path.stem} ...)."
            ) from None
        records[record.part] = record
    return records


@dataclass
class Combined:
    """The combined table: rows in seed order, each with the part that measured it, and what is missing."""

    rows: list[dict[str, Any]]
    parts: dict[str, PartRecord]
    missing_seeds: list[str]
    missing_parts: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "parts": {
                name: {k: v for k, v in r.__dict__.items() if k != "rows"} for name, r in self.parts.items()
            },
            "missing_seeds": self.missing_seeds,
            "missing_parts": self.missing_parts,
        }


def combine(parts: Mapping[str, PartRecord], known: Sequence[str]) -> Combined:
    """All saved rows in seed order (within a seed, parts in ``known``'s order), and the seeds and parts
    (of ``known``, every part the benchmark has) not measured yet."""
    order = {name: i for i, name in enumerate(known)}
    ordered = {name: parts[name] for name in sorted(parts, key=lambda n: order.get(n, len(order)))}
    rows = []
    for name, record in ordered.items():
        rows += [{**row, "part": name} for row in record.rows]
    rows.sort(key=lambda r: SEEDS.index(r["seed"]))  # stable: parts keep their order within a seed
    have = {r["seed"] for r in rows}
    return Combined(
        rows=rows,
        parts=ordered,
        missing_seeds=[s for s in SEEDS if s not in have],
        missing_parts=[p for p in known if p not in parts],
    )


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def details(row: Mapping[str, Any]) -> str:
    """A row's other values as ``key value`` pairs (exact match, step, forward ms, ...)."""
    extra = [(k, v) for k, v in row.items() if k not in (*ROW_KEYS, "part")]
    return "; ".join(f"{k.replace('_', ' ')} {format_value(v)}" for k, v in extra)


def markdown(combined: Combined, commands: Mapping[str, str]) -> str:
    """The combined table in Markdown, then where each part ran, then what is not measured yet and the
    commands that measure it (``commands``: part -> its command line)."""
    lines = [
        "| seed | measure | seed reported | MindGym | details | part |",
        "|---|---|---|---|---|---|",
    ]
    for row in combined.rows:
        cells = [
            row["seed"],
            row["measure"],
            format_value(row["seed_reported"]),
            format_value(row["mindgym"]),
        ]
        lines.append("| " + " | ".join([*cells, details(row), row["part"]]) + " |")
    lines += ["", "| part | device | date | minutes | command |", "|---|---|---|---|---|"]
    for name, record in combined.parts.items():
        lines.append(
            f"| {name} | {record.device} | {record.date} | {record.minutes:.1f} | `{record.command}` |"
        )
    if combined.missing_parts:
        lines += ["", "Not measured yet:"]
        lines += [f"- {p}: `{commands.get(p, '')}`" for p in combined.missing_parts]
    if combined.missing_seeds:
        lines += ["", f"Seeds without a row yet: {', '.join(combined.missing_seeds)}."]
    return "\n".join(lines)


def write_combined(out: Path, combined: Combined, commands: Mapping[str, str]) -> tuple[Path, Path]:
    """``<out>/seed_fidelity.json`` and ``<out>/seed_fidelity.md`` (atomic writes); returns both paths."""
    json_path = write_report(combined.to_dict(), Path(out) / "seed_fidelity.json")
    md_path = Path(out) / "seed_fidelity.md"
    tmp = md_path.with_name(f".{md_path.name}.tmp")
    tmp.write_text(markdown(combined, commands) + "\n")
    tmp.replace(md_path)
    return json_path, md_path


def part_names(values: Sequence[str], known: Sequence[str]) -> list[str]:
    """``--parts`` as a list of known part names (``all``: every part), in the given order, no repeats."""
    names: list[str] = []
    for value in values:
        for name in known if value == "all" else [value]:
            if name not in known:
                raise ValueError(f"--parts {value}: no such part; the parts are {', '.join(known)} (or all).")
            if name not in names:
                names.append(name)
    return names
