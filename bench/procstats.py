"""Process and latency statistics for :mod:`bench.loadgen` (``/proc`` readers, percentiles)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far, None when it is gone."""
    got = proc_counters(pid)
    return None if got is None else got[0] + got[1]


def proc_counters(pid: int) -> tuple[float, float, int] | None:
    """User CPU s, system CPU s and major page faults of a process so far; None when gone.

    A major fault is a page read back from disk (a memory-mapped bundle page that the
    kernel had reclaimed): the thread that touched it waits for the read.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # fields[0] is field 3 of proc(5): majflt is field 12, utime 14, stime 15.
    return int(fields[11]) / tick, int(fields[12]) / tick, int(fields[9])


def kernel_report(
    counters: dict[str, list[tuple[float, float, float, int]]], warmup_s: float
) -> dict[str, Any]:
    """Per process after the warm-up: major faults (count, per s) and the kernel's CPU share.

    Args:
        counters: name -> samples ``(t_s, user_s, system_s, major_faults)``.
        warmup_s: Samples before this are ignored.
    """
    out: dict[str, Any] = {}
    for name, samples in counters.items():
        after = [s for s in samples if s[0] >= warmup_s]
        if len(after) < 2:
            continue
        (t0, u0, s0, f0), (t1, u1, s1, f1) = after[0], after[-1]
        cpu = (u1 - u0) + (s1 - s0)
        out[name] = {
            "major_faults": f1 - f0,
            "major_faults_per_s": round((f1 - f0) / max(1e-9, t1 - t0), 2),
            "system_cpu_share": round((s1 - s0) / cpu, 3) if cpu > 0 else None,
        }
    return out


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MiB (``VmRSS``), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def percentiles(values: list[float]) -> dict[str, float]:
    """Count, p50/p95/p99, max and mean in ms of durations given in seconds."""
    if not values:
        return {"count": 0}
    arr = np.asarray(values) * 1000.0
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "count": len(values),
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "max_ms": round(float(arr.max()), 3),
        "mean_ms": round(float(arr.mean()), 3),
    }


def cpu_report(
    cpu: dict[str, list[tuple[float, float]]], warmup_s: float, done: list[float]
) -> dict[str, Any]:
    """Cores used and CPU ms per request completed between two samples after the warm-up."""
    out: dict[str, Any] = {}
    for name, samples in cpu.items():
        after = [(t, c) for t, c in samples if t >= warmup_s]
        if len(after) < 2:
            continue
        (t0, c0), (t1, c1) = after[0], after[-1]
        n = sum(1 for d in done if t0 <= d <= t1)
        out[name] = {
            "cores": round((c1 - c0) / max(1e-9, t1 - t0), 3),
            "cpu_ms_per_request": round(1000.0 * (c1 - c0) / n, 3) if n else None,
        }
    return out


def memory_report(memory: dict[str, list[tuple[float, float]]], warmup_s: float) -> dict[str, Any]:
    """RSS after the warm-up, at the end (medians of a few samples) and the growth in %."""
    out: dict[str, Any] = {}
    for name, samples in memory.items():
        after = [mb for t, mb in samples if t >= warmup_s]
        if not after:
            out[name] = {"samples": samples}
            continue
        k = max(1, min(5, len(after) // 5))
        base = float(np.median(after[:k]))
        end = float(np.median(after[-k:]))
        out[name] = {
            "rss_after_warmup_mb": round(base, 2),
            "rss_end_mb": round(end, 2),
            "rss_max_mb": round(max(after), 2),
            "growth_pct": round(100.0 * (end - base) / base, 3) if base else None,
            "samples": samples,
        }
    return out
