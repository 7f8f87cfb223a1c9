"""One JSON out of several ``bench.e2e`` runs of one sitting: an A/B comparison, run by run.

The machine's speed drifts by tens of percent within an hour, so two variants
(two commits with ``--code-root``, or two settings with ``--env``) are compared
only as runs alternated in one sitting. This keeps, per run and rate, what the
comparison needs: latency percentiles, errors, degraded answers, the result
cache's hit rate, CPU per request per service and the per-stage medians of
the computed answers. CLI::

    python -m bench.ab_summary --what "..." --out docs/bench/x.json \\
        annoy=bench/results/e2e_synthetic-1000000_annoy1.json hnsw=...hnsw1.json ...

Each ``label=path`` is one run; repeats of a label are numbered in order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def run_rows(label: str, repeat: int, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-rate rows of one ``bench.e2e`` report."""
    rows = []
    for r in report["runs"]:
        load = r["load"]
        rows.append({
            "code": label, "repeat": repeat, "rate": r["rate"],
            "latency_ms": {k: load["latency"].get(k)
                           for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
            "errors": load["errors"]["total"], "degraded": load["degraded"]["total"],
            "hit_rate": load["result_cache"].get("hit_rate"),
            "miss_latency_ms": load["result_cache"].get("latency_by_outcome", {}).get("miss"),
            "cpu_ms_per_request": {k: v.get("cpu_ms_per_request")
                                   for k, v in load.get("cpu", {}).items()},
            "breakdown_median_ms": r.get("breakdown_median_ms"),
            "tail_breakdown": r.get("breakdown", {}).get("tail"),
            "cpu_speed": report.get("machine", {}).get("cpu_speed"),
        })
    return rows


def summarise(runs: list[tuple[str, Path]], what: str) -> dict[str, Any]:
    """Rows of every run plus, per label and rate, the range of p50 and p99 over repeats."""
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    label_name = ""
    for label, path in runs:
        seen[label] = seen.get(label, 0) + 1
        report = json.loads(path.read_text())
        label_name = report.get("label", label_name)
        rows += run_rows(label, seen[label], report)
    ranges: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in rows:
        cell = ranges.setdefault(row["code"], {}).setdefault(f"{row['rate']:g}", {})
        for q in ("p50_ms", "p99_ms"):
            value = row["latency_ms"][q]
            lo, hi = cell.get(q, [value, value])
            cell[q] = [min(lo, value), max(hi, value)]
    return {"benchmark": "e2e_ab", "label": label_name, "what": what,
            "order": [label for label, _ in runs], "p50_p99_range_ms": ranges, "runs": rows}


def main(argv: list[str] | None = None) -> int:
    """CLI: write the summary JSON and print its ranges."""
    ap = argparse.ArgumentParser(prog="python -m bench.ab_summary")
    ap.add_argument("--what", required=True, help="what was compared, how, in which order")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("runs", nargs="+", help="label=path of a bench.e2e JSON report")
    args = ap.parse_args(argv)
    runs = []
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep or not label:
            ap.error(f"expected label=path, got {spec!r}")
        runs.append((label, Path(path)))
    result = summarise(runs, args.what)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["p50_p99_range_ms"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
