"""HNSW search with and without transparent huge pages, each variant in a process of its own.

glibc reads ``GLIBC_TUNABLES`` once, when a process starts, so the two variants
cannot share a process: each round starts one child without the tunable (the
baseline) and one with it (what ``hybridrec serve`` gives the services, see
:func:`shared.serving.process_tuning.with_huge_pages`), alternated ``rounds`` times. Every
child loads the same graph files, as the retrieval service does, runs the same
queries after a warm-up and reports its latencies and how much of its memory got
huge pages. The report gives, per graph and variant, the latency over all rounds
and the ratio of medians (with / without).

Run alone: ``python -m bench.huge_pages --bundle DIR [--out FOLDER]`` (a bundle with HNSW
graphs); ``make bench`` runs it in its ``ann_content`` section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import PROJECT_ROOT, log, stats_ms, write_json
from shared.serving.process_tuning import HUGE_PAGES_ENV, huge_page_report, with_huge_pages

WARMUP = 50


def _child(specs: list[str], k: int) -> dict[str, Any]:
    """Load every graph, then time its queries; ``specs`` are ``name=path:dim:ef:queries.npy``."""
    from shared.model.search.hnsw import HnswIndex

    loaded = []
    for spec in specs:
        name, rest = spec.split("=", 1)
        path, dim, ef, queries = rest.rsplit(":", 3)
        index = HnswIndex.load(path, int(dim), ef=int(ef))
        loaded.append((name, index, np.load(queries)))
    memory = huge_page_report()  # both graphs resident, as in the service
    out: dict[str, Any] = {"memory": memory, "graphs": {}}
    for name, index, qs in loaded:
        for q in qs[:WARMUP]:
            index.query(q, k)
        times = []
        for q in qs:
            t0 = time.perf_counter()
            index.query(q, k)
            times.append(time.perf_counter() - t0)
        out["graphs"][name] = times
    return out


def _run_child(specs: list[str], k: int, huge: bool) -> dict[str, Any]:
    env = {key: v for key, v in os.environ.items() if key != "GLIBC_TUNABLES"}
    env = with_huge_pages({**env, HUGE_PAGES_ENV: "true" if huge else "false"})
    cmd = [sys.executable, "-m", "bench.huge_pages", "--child", "--k", str(k), *specs]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"huge-pages child (huge={huge}) failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_huge_pages_bench(graphs: dict[str, tuple[Path, int, int, np.ndarray]], *,
                         k: int = 300, rounds: int = 2) -> dict[str, Any]:
    """Time the graphs' queries without and with huge pages, alternated ``rounds`` times.

    Args:
        graphs: name -> (graph file, vector width, ef, queries of shape (n, width)).
        k: Neighbours per query (the service asks for a few hundred).
        rounds: Child pairs (without, then with).

    Returns:
        Per graph and variant the latency stats over all rounds, the ratio of medians
        (with / without: below 1 is faster) and each child's memory report.
    """
    samples: dict[str, dict[str, list[float]]] = {g: {"without": [], "with": []} for g in graphs}
    memory: dict[str, list[dict[str, Any]]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory(prefix="huge-pages-") as tmp:
        specs = []
        for name, (path, dim, ef, queries) in graphs.items():
            qfile = Path(tmp) / f"{name}.npy"
            np.save(qfile, np.ascontiguousarray(queries, dtype=np.float32))
            specs.append(f"{name}={path}:{dim}:{ef}:{qfile}")
        for r in range(rounds):
            for variant, huge in (("without", False), ("with", True)):
                got = _run_child(specs, k, huge)
                memory[variant].append(got["memory"])
                for name, times in got["graphs"].items():
                    samples[name][variant] += times
                log(f"huge pages round {r + 1}/{rounds} {variant}: " + ", ".join(
                    f"{n} p50 {np.median(t) * 1000:.2f} ms" for n, t in got["graphs"].items())
                    + f"; {got['memory']['anon_huge_mb']} MB in huge pages")
    out: dict[str, Any] = {"k": k, "rounds": rounds, "memory": memory, "graphs": {}}
    for name, by in samples.items():
        with_, without = stats_ms(by["with"]), stats_ms(by["without"])
        out["graphs"][name] = {
            "with": with_, "without": without,
            "ratio_p50": round(with_["p50_ms"] / without["p50_ms"], 3),
            "ratio_p99": round(with_["p99_ms"] / without["p99_ms"], 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=300)
    ap.add_argument("--bundle", help="a bundle with HNSW graphs (its latest/ or itself)")
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", help="write huge_pages.json (with the machine) into this folder")
    ap.add_argument("specs", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.specs, args.k)))
        return 0
    if not args.bundle:
        ap.error("--bundle is required")
    from bench.workload import content_queries, user_queries
    from shared.contracts import bundle_layout as L
    from shared.contracts.bundle import load_bundle

    bundle = load_bundle(args.bundle, verify=False)
    hnsw = bundle.manifest["components"]["hnsw"]
    # The service's queries: user vectors from the query tower for the item graph, the
    # mean content vector of a user's recent items for the content graph.
    graphs = {
        "content": (bundle.path(L.CONTENT_HNSW), int(hnsw["content"]["dim"]),
                    int(hnsw["content"]["ef"]), content_queries(bundle.root, args.queries)),
        "item_tower": (bundle.path(L.ITEM_HNSW), int(hnsw["item_tower"]["dim"]),
                       int(hnsw["item_tower"]["ef"]), user_queries(bundle.root, args.queries)),
    }
    result = run_huge_pages_bench(graphs, k=args.k, rounds=args.rounds)
    result["bundle"] = str(bundle.root)
    if args.out:
        log(f"wrote {write_json('huge_pages', result, Path(args.out))}")
    print(json.dumps(result["graphs"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
