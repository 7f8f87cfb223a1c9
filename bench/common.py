"""Helpers shared by the benchmarks: timing statistics, memory, results files.

Timings are wall-clock (``time.perf_counter``) on a shared, noisy machine, so
every benchmark reports medians and high percentiles over many calls, and the
ratios against a baseline measured in the same run, never one-shot figures.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / "bench" / "results"


def log(msg: str) -> None:
    """One progress line on stderr."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {msg}", file=sys.stderr, flush=True)


def stats_ms(samples_s: list[float] | np.ndarray) -> dict[str, float]:
    """Median, p90, p99, mean, min and count of durations given in seconds, in ms."""
    arr = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if arr.size == 0:
        return {"n": 0}
    return {
        "n": int(arr.size),
        "p50_ms": round(float(np.percentile(arr, 50)), 4),
        "p90_ms": round(float(np.percentile(arr, 90)), 4),
        "p99_ms": round(float(np.percentile(arr, 99)), 4),
        "mean_ms": round(float(arr.mean()), 4),
        "min_ms": round(float(arr.min()), 4),
    }


def time_calls(fn: Callable[[], Any], n: int, warmup: int = 3) -> list[float]:
    """Durations (s) of ``n`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["s"]`` holds the seconds taken."""
    box: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = round(time.perf_counter() - t0, 3)


def _status_kb(field: str, pid: int | str = "self") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (Linux /proc; 0 elsewhere)."""
    return round(_status_kb("VmRSS", pid) / 1024.0, 1)


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of a process in MB."""
    return round(_status_kb("VmHWM", pid) / 1024.0, 1)


def file_mb(path: str | os.PathLike[str]) -> float:
    """Size of a file in MB."""
    return round(Path(path).stat().st_size / 1e6, 1)


@functools.lru_cache(maxsize=1)
def cpu_speed() -> dict[str, float]:
    """Fixed CPU work timed on this machine (best of 5, ms), measured once per process.

    Machines of one kind differ, so the same e2e run can cost a different CPU time per
    request from one session to the next (``docs/scaling.md`` has such sittings side by
    side). These figures say how fast this one runs
    the interpreter, numpy over cached data (``numpy_scan_ms``) and random reads from
    memory (``random_rows_ms``), so results from two sittings can be set side by side;
    within one run, compare only with the run's own baseline.
    """

    def best(fn: Callable[[], Any]) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(min(times) * 1000.0, 2)

    rng = np.random.default_rng(0)
    mat = rng.standard_normal((20_000, 384), dtype=np.float32)
    vec = rng.standard_normal(384, dtype=np.float32)

    def python_loop() -> int:
        total = 0
        for i in range(1_000_000):
            total += i & 7
        return total

    def numpy_scan() -> None:
        for _ in range(10):
            np.argpartition(-(mat @ vec), 100)[:100]

    # Memory latency, which the two above miss: a row gather over 512 MB (far beyond the
    # caches), the access pattern of ANN graphs and per-candidate table lookups. A machine
    # with a faster loop can still be slower per request (docs/scaling.md, "Huge pages
    # for the HNSW graphs, and a slower machine").
    def random_rows_ms() -> float:
        table = np.ones((1 << 21, 64), dtype=np.float32)  # freed on return
        rows = rng.integers(0, len(table), size=200_000)
        return best(lambda: table.take(rows, axis=0))

    return {"python_loop_ms": best(python_loop), "numpy_scan_ms": best(numpy_scan),
            "random_rows_ms": random_rows_ms()}


def machine() -> dict[str, Any]:
    """What the figures were measured on, with :func:`cpu_speed`."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in load],
        "numpy": np.__version__,
        "cpu_speed": cpu_speed(),
    }


def write_json(name: str, data: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``out_dir/name.json`` with a timestamp and the machine description."""
    folder = Path(out_dir or RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {"benchmark": name, "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
