"""bench.e2e's report: the plot with and without the tail breakdown, and the summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.e2e import BREAKDOWN, OUTSIDE, plot_e2e, summary_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report(with_tail: bool) -> dict[str, Any]:
    runs = []
    for rate, p99 in ((50.0, 20.0), (200.0, 90.0)):
        med = {c: 1.0 + i for i, c in enumerate(BREAKDOWN)}
        row: dict[str, Any] = {
            "rate": rate,
            "load": {"latency": {"p50_ms": p99 / 4, "p95_ms": p99 / 2, "p99_ms": p99,
                                 "max_ms": p99 * 2},
                     "achieved_rps": rate, "errors": {"total": 0},
                     "degraded": {"total": 0}},
            "baseline": {"latency": {"p99_ms": 2.0}},
            "breakdown_median_ms": med,
            "breakdown": {"median_ms": med},
        }  # fmt: skip
        if with_tail:
            row["breakdown"]["tail"] = {
                "share": 0.02, "n": 3, "client_min_ms": p99,
                "median_ms": {**{c: 3 * v for c, v in med.items()}, OUTSIDE: 4.0},
            }  # fmt: skip
        runs.append(row)
    return {"label": "synthetic-1000", "tag": "t", "cpus": 2, "runs": runs}


@pytest.mark.parametrize("with_tail", [True, False])
def test_plot_and_table(tmp_path: Path, with_tail: bool) -> None:
    report = _report(with_tail)
    path = plot_e2e(report, tmp_path / "e2e.png")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000
    table = summary_table(report).splitlines()
    assert len(table) == 2 + len(report["runs"]) and table[2].startswith("| 50 ")
