"""The common benchmark harness: warm-up, repeats, median, a printed table and a row in docs/benchmarks.md.

from bench.harness import Benchmark
bench = Benchmark("maze throughput")
stats = bench.time(lambda: env.step(actions), warmup=3, repeats=10, sync=torch.cuda.synchronize)
bench.add(setting="1024 envs, cpu", steps_per_s=1024 / stats.median)
bench.report()          # prints the table; appends it with command, device and date
"""

from __future__ import annotations

import datetime as _dt
import platform
import shlex
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Timing:
    """Seconds per call over ``repeats`` timed calls after warm-up."""

    median: float
    minimum: float
    maximum: float
    repeats: int


def runner_config(runner: str, overrides: list[str]) -> Any:
    """The runner's config as ``python -m runners.<runner> <overrides>`` composes it (for benchmarks that
    build or train a runner's experiment in process)."""
    from hydra import compose, initialize_config_dir

    from runners.config import CONF_PATH, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_PATH), version_base="1.3"):
        return compose(config_name=runner, overrides=overrides)


def train_runner(
    runner: str, overrides: list[str], device: torch.device, run_dir: Path, minutes: float | None = None
) -> dict[str, Any]:
    """Train ``python -m runners.<runner> <overrides>`` in process into ``run_dir`` (emptied first), on
    ``device``, for at most ``minutes`` of wall clock (None: the config's own steps); returns its report."""
    import importlib
    import shutil

    from runners.app import execute

    hardware = ["hardware=gpu"] if device.type == "cuda" else [f"hardware.device={device.type}"]
    budget = [f"trainer.max_minutes={minutes}"] if minutes is not None else []
    overrides = [*hardware, *budget, "trainer.progress_bar=false", *overrides]
    cfg = runner_config(runner, overrides)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    module = importlib.import_module(f"runners.{runner}")
    return execute(cfg, runner, module.build_experiment, run_dir=run_dir, overrides=overrides)


def device_name(device: str | torch.device | None = None) -> str:
    """A human-readable name of the device a benchmark ran on (GPU model, or CPU and core count)."""
    dev = torch.device(device) if device is not None else None
    if (dev is None or dev.type == "cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev if dev is not None else 0)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def time_call(
    fn: Callable[[], Any], warmup: int = 3, repeats: int = 10, sync: Callable[[], None] | None = None
) -> Timing:
    """Time ``fn``: ``warmup`` untimed calls, then ``repeats`` timed ones; ``sync`` before each clock read."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(time.perf_counter() - start)
    return Timing(statistics.median(samples), min(samples), max(samples), repeats)


def cuda_sync_for(device: str | torch.device) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` when ``device`` is a GPU, else None (nothing to wait for)."""
    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def host_syncs(fn: Any) -> int:
    """Synchronising CUDA calls (host waits on the GPU) made by ``fn``, counted by the sync debug mode."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def vector_steps_per_s(env: Any, actions: torch.Tensor, warmup: int = 1, repeats: int = 3) -> float:
    """Sub-env steps per second of a vector env replaying ``actions`` (steps, num_envs) on its device."""
    steps, num_envs = actions.shape

    def run() -> None:
        for i in range(steps):
            env.step(actions[i])

    timing = time_call(run, warmup=warmup, repeats=repeats, sync=cuda_sync_for(actions.device))
    return num_envs * steps / timing.median


class Benchmark:
    """Collects result rows, prints them as a table and records them in docs/benchmarks.md."""

    def __init__(self, title: str, device: str | torch.device | None = None):
        self.title = title
        self.device = device
        self.rows: list[dict[str, Any]] = []

    time = staticmethod(time_call)

    def add(self, **row: Any) -> None:
        self.rows.append(row)

    def table(self) -> str:
        columns: list[str] = []
        for row in self.rows:
            columns += [c for c in row if c not in columns]
        cells = [[_fmt(row.get(c, "")) for c in columns] for row in self.rows]
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines)

    def report(self, record: bool = True, path: Path = BENCHMARKS_MD) -> str:
        """Print the table; with ``record`` append it under a heading with command, device and date."""
        table = self.table()
        command = "python -m " + shlex.join([_module_name(), *sys.argv[1:]])
        header = (
            f"\n### {self.title}\n\n- command: `{command}`\n- device: {device_name(self.device)}\n"
            f"- date: {_dt.date.today().isoformat()}\n"
            f"- torch {torch.__version__}, Python {platform.python_version()}\n\n"
        )
        print(header + table)
        if record:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(header + table + "\n")
        return table


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)
