"""Cost of attribute filters on retrieval's search path (issue 19.5).

For a synthetic catalogue of ``--items`` items (64-d item-tower-like vectors in Zipf
clusters, a categorical list attribute ``genres`` of 20 Zipf-distributed values with 1-3
values per item, a numeric ``year``, 2% unavailable), times per query, in this process:

* ``none``: the search retrieval runs without a filter (the index's top ``depth``);
* ``50pct`` / ``1pct``: :func:`services.retrieval.filtering.allowed_mask` for a filter
  letting about 50% / 1% of the items through, then
  :func:`services.retrieval.filtering.filtered_search` for the top ``depth`` allowed items
  (exact scan of the allowed rows when they are few, else the widened ANN query).

The index is the one retrieval serves at that size (:func:`use_exact`: exact below 4M
elements, else HNSW with the bundle builder's defaults). Output: one JSON object
(median and p95 ms per part, the path taken, the recall of the filtered top list against
brute force under the mask).

    python -m bench.filter_bench --items 9742 --items 1000000 --out bench/out/filters.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from services.retrieval.filtering import (
    LiveItems,
    allowed_mask,
    exact_is_cheaper,
    filtered_search,
    subset_search,
)
from shared.contracts.filters import ItemFilter
from shared.model.catalogue import Catalogue
from shared.model.search import VectorIndex
from shared.model.search.exact import ExactSearch, use_exact
from shared.model.search.hnsw import HnswIndex
from shared.serving.process_tuning import limit_compute_threads

DIM = 64
DEPTH = 200
GENRES = tuple(f"g{i:02d}" for i in range(20))


def synthetic(n: int, seed: int) -> tuple[Catalogue, np.ndarray]:
    """A catalogue with genres/year/available and unit vectors in Zipf-sized clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 50, 10), DIM)).astype(np.float32)
    weights = 1.0 / np.arange(1, len(centres) + 1) ** 0.8
    parent = rng.choice(len(centres), n, p=weights / weights.sum())
    vectors = centres[parent] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    gw = 1.0 / np.arange(1, len(GENRES) + 1) ** 1.1
    gw /= gw.sum()
    genres = [sorted(set(rng.choice(GENRES, int(rng.integers(1, 4)), p=gw).tolist()))
              for _ in range(n)]
    years = rng.integers(1950, 2026, n)
    cat = Catalogue(
        item_ids=np.char.add("i", np.arange(n).astype(str)), titles=[""] * n,
        years=years.tolist(), genres=genres, tags=[[] for _ in range(n)],
        overviews=[None] * n, popularity=rng.zipf(1.5, n).astype(np.int64),
        attribute_types={"genres": "categorical", "year": "numeric"},
        categorical={"genres": genres}, numeric={"year": years.astype(np.float32)},
        available=rng.random(n) >= 0.02, list_attributes={"genres"})
    return cat, vectors


def _filter_for(cat: Catalogue, share: float) -> ItemFilter:
    """A genre include + a year range whose pass rate is close to ``share``."""
    counts = {g: len(p) for g, p in cat.value_positions("genres").items()}
    if share >= 0.3:  # the most common genre (about half the items), every year
        top = max(counts, key=lambda g: counts[g])
        return ItemFilter(include={"genres": [top]}, range={"year": {"gte": 1950}})
    rare = sorted(counts, key=lambda g: counts[g])
    pick = min(rare, key=lambda g: abs(counts[g] * 0.5 - share * len(cat)))
    return ItemFilter(include={"genres": [pick]}, range={"year": {"gte": 1988}})


def _ms(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1e3
    return {"median_ms": round(float(np.median(arr)), 3),
            "p95_ms": round(float(np.percentile(arr, 95)), 3)}


def run(n: int, queries: int, seed: int) -> dict[str, Any]:
    cat, vectors = synthetic(n, seed)
    t0 = time.perf_counter()
    index: VectorIndex = (ExactSearch(vectors) if use_exact(n, DIM)
                          else HnswIndex.build(vectors, seed=seed))
    build_s = time.perf_counter() - t0

    async def ann_query(idx: VectorIndex, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return idx.query(q, k)

    engine: Any = SimpleNamespace(catalogue=cat, live=LiveItems.build(cat, {}), n_items=n,
                                  ann_query=ann_query)
    rng = np.random.default_rng(seed + 1)
    qs = vectors[rng.choice(n, queries)] + 0.3 * rng.normal(size=(queries, DIM)).astype(
        np.float32)
    out: dict[str, Any] = {"n_items": n, "dim": DIM, "depth": DEPTH, "index": index.kind,
                           "index_build_s": round(build_s, 1), "queries": queries}
    base, recalls = [], []
    every = np.arange(n)
    for q in qs:
        t = time.perf_counter()
        ids, _ = index.query(q, DEPTH)
        base.append(time.perf_counter() - t)
        exact, _ = subset_search(vectors, every, q, DEPTH)
        recalls.append(len(set(ids.tolist()) & set(exact.tolist())) / DEPTH)
    out["none"] = {**_ms(base), "recall_vs_brute_force": round(float(np.mean(recalls)), 4)}
    for label, share in (("50pct", 0.5), ("1pct", 0.01)):
        out[label] = asyncio.run(_filtered(engine, index, vectors, qs, _filter_for(cat, share)))
    return out


async def _filtered(engine: Any, index: VectorIndex, vectors: np.ndarray, qs: np.ndarray,
                    flt: ItemFilter) -> dict[str, Any]:
    """Mask + search per query, in one event loop (as in the service)."""
    n = len(vectors)
    masks, searches, recalls = [], [], []
    n_ok = 0
    for q in qs:
        t = time.perf_counter()
        ok = allowed_mask(engine, flt, [])
        t1 = time.perf_counter()
        assert ok is not None
        n_ok = int(ok.sum())
        ids, _ = await filtered_search(engine, index, vectors, q, DEPTH, ok, n_ok)
        t2 = time.perf_counter()
        masks.append(t1 - t)
        searches.append(t2 - t1)
        exact, _ = subset_search(vectors, np.flatnonzero(ok), q, DEPTH)
        recalls.append(len(set(ids.tolist()) & set(exact.tolist())) / max(len(exact), 1))
    total = [a + b for a, b in zip(masks, searches, strict=True)]
    return {
        "filter": flt.model_dump(exclude_defaults=True), "passing": n_ok,
        "passing_share": round(n_ok / n, 4),
        "path": "exact scan" if exact_is_cheaper(index, n_ok) else "widened ANN",
        "mask": _ms(masks), "search": _ms(searches), "total": _ms(total),
        "recall_vs_brute_force": round(float(np.mean(recalls)), 4),
    }


def with_ratios(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with each filter's median total time over the unfiltered search's, in
    the same run (the figure ``make bench`` reports)."""
    base = result["none"]["median_ms"]
    for label in ("50pct", "1pct"):
        result[label]["ratio_to_none"] = round(result[label]["total"]["median_ms"] / base, 2)
    return result


def plot_filters(results: list[dict[str, Any]], path: Path) -> Path:
    """Median ms of the search alone, a 50% and a 1% filter (mask + search), per size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(results), 1)
    labels = ("no filter", "50% pass", "1% pass")
    for j, r in enumerate(results):
        vals = [r["none"]["median_ms"], r["50pct"]["total"]["median_ms"],
                r["1pct"]["total"]["median_ms"]]
        xs = [i + j * width for i in range(3)]
        ax.bar(xs, vals, width, label=f"{r['n_items']:,} items ({r['index']})")
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([i + width * (len(results) - 1) / 2 for i in range(3)], labels)
    ax.set_ylabel(f"median ms per query (top {DEPTH}, 1 BLAS thread)")
    ax.set_title("Filtered retrieval search: mask + search vs the unfiltered search")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.filter_bench")
    ap.add_argument("--items", type=int, action="append", required=True)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads, as the services cap them (HYBRIDREC_COMPUTE_THREADS)")
    args = ap.parse_args(argv)
    limit_compute_threads(args.threads)
    results = []
    for n in args.items:
        res = with_ratios(run(n, args.queries, args.seed))
        print(json.dumps(res), file=sys.stderr, flush=True)
        results.append(res)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
