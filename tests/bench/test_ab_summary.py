"""bench.ab_summary: rows per run and rate, repeats numbered, p50/p99 ranges per variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import ab_summary


def _report(p99s: dict[float, float]) -> dict[str, Any]:
    return {"label": "synthetic-1000", "machine": {"cpu_speed": {"python_loop_ms": 40.0}},
            "runs": [{
        "rate": rate,
        "load": {"latency": {"p50_ms": p99 / 4, "p95_ms": p99 / 2, "p99_ms": p99, "max_ms": p99},
                 "errors": {"total": 0}, "degraded": {"total": 1},
                 "result_cache": {"hit_rate": 0.5, "latency_by_outcome": {"miss": {"p99_ms": 9}}},
                 "cpu": {"retrieval": {"cpu_ms_per_request": 2.0}}},
        "breakdown_median_ms": {"ANN": 1.5},
        "breakdown": {"tail": {"n": 3, "median_ms": {"ANN": 9.0}}},
    } for rate, p99 in p99s.items()]}


def test_runs_and_ranges(tmp_path: Path) -> None:
    paths = []
    for name, p99s in (("a1", {50.0: 20.0, 200.0: 40.0}), ("b1", {50.0: 10.0, 200.0: 30.0}),
                       ("a2", {50.0: 24.0, 200.0: 36.0})):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_report(p99s)))
        paths.append(path)
    out = tmp_path / "ab.json"
    code = ab_summary.main(["--what", "test", "--out", str(out),
                            f"old={paths[0]}", f"new={paths[1]}", f"old={paths[2]}"])
    assert code == 0
    res = json.loads(out.read_text())
    assert res["order"] == ["old", "new", "old"] and res["label"] == "synthetic-1000"
    assert [(r["code"], r["repeat"], r["rate"]) for r in res["runs"]] == [
        ("old", 1, 50.0), ("old", 1, 200.0), ("new", 1, 50.0), ("new", 1, 200.0),
        ("old", 2, 50.0), ("old", 2, 200.0)]
    assert res["p50_p99_range_ms"]["old"]["200"]["p99_ms"] == [36.0, 40.0]
    assert res["p50_p99_range_ms"]["new"]["50"]["p50_ms"] == [2.5, 2.5]
    row = res["runs"][0]
    assert row["degraded"] == 1 and row["miss_latency_ms"] == {"p99_ms": 9}
    assert row["cpu_ms_per_request"] == {"retrieval": 2.0}
    assert row["breakdown_median_ms"] == {"ANN": 1.5}
    assert row["tail_breakdown"]["median_ms"] == {"ANN": 9.0}
    assert row["cpu_speed"] == {"python_loop_ms": 40.0}
