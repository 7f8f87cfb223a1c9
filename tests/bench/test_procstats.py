"""bench.procstats: /proc readers and the report helpers of the load generator."""

from __future__ import annotations

import os
import resource

import pytest

from bench.procstats import (
    cpu_report,
    cpu_s,
    kernel_report,
    memory_report,
    percentiles,
    proc_counters,
    rss_mb,
)


def test_proc_readers_on_this_process_and_a_missing_one() -> None:
    assert (rss_mb(os.getpid()) or 0) > 1.0
    assert (cpu_s(os.getpid()) or 0) > 0.0
    assert rss_mb(2**22 + 12345) is None and cpu_s(2**22 + 12345) is None
    user, system, major = proc_counters(os.getpid()) or (0.0, 0.0, -1)
    assert user > 0.0 and system >= 0.0
    # The kernel's own count through another door (minor faults would differ at once).
    assert major == resource.getrusage(resource.RUSAGE_SELF).ru_majflt
    assert proc_counters(2**22 + 12345) is None


def test_major_faults_and_kernel_share_after_the_warm_up() -> None:
    samples = [(0.0, 0.0, 0.0, 0), (2.0, 1.0, 0.1, 50), (12.0, 3.0, 0.6, 80)]
    got = kernel_report({"svc": samples, "short": samples[:1]}, warmup_s=1.0)
    assert set(got) == {"svc"}  # one sample after the warm-up says nothing
    assert got["svc"]["major_faults"] == 30 and got["svc"]["major_faults_per_s"] == 3.0
    assert got["svc"]["system_cpu_share"] == pytest.approx(0.5 / 2.5)


def test_percentiles_in_ms() -> None:
    got = percentiles([0.001 * i for i in range(1, 101)])
    assert got["count"] == 100 and got["max_ms"] == pytest.approx(100.0)
    assert got["p50_ms"] == pytest.approx(50.5) and got["p99_ms"] == pytest.approx(99.01)
    assert percentiles([]) == {"count": 0}


def test_memory_growth_is_measured_after_the_warm_up() -> None:
    samples = [(t, 100.0 if t < 5 else 200.0 + t) for t in range(0, 30)]
    got = memory_report({"svc": samples}, warmup_s=5.0)["svc"]
    assert got["rss_after_warmup_mb"] == pytest.approx(207.0)  # median of the first 5 after
    assert got["rss_end_mb"] == pytest.approx(227.0)  # median of the last 5
    assert got["growth_pct"] == pytest.approx(100 * 20 / 207, abs=1e-3)


def test_cpu_per_request_between_samples() -> None:
    cpu = {"svc": [(0.0, 1.0), (2.0, 1.1), (12.0, 3.1)]}
    done = [2.05 + 0.1 * i for i in range(100)] + [12.5]  # 100 between t=2 and t=12
    got = cpu_report(cpu, warmup_s=1.0, done=done)["svc"]
    assert got["cores"] == pytest.approx(0.2) and got["cpu_ms_per_request"] == pytest.approx(20.0)
