"""Ranking cost per request: the service's scorer against plain forward passes, same run.

For 50 / 200 / 500 / 1000 candidates of one user (real bundle, real user and
history; candidate items and their retrieval scores sampled), times:

* ``service_rank``: :meth:`RankingEngine.rank` on a parsed request - candidate
  set rebuilt from the request, features, numpy forward with single-threaded
  BLAS, sort (what the ranking service does per request, without HTTP);
* ``features``: :meth:`RankerScorer.features` alone;
* ``scorer_numpy``: :meth:`RankerScorer.score` (the service's forward pass);
* ``plain_numpy``: the same weights' numpy graph called directly (no dtype
  checks, no blocking, BLAS held to one thread around the whole loop) - the baseline;
* ``plain_numpy_blas_threads``: the same with BLAS's default threads (shows the
  OpenBLAS stall next to TensorFlow's thread pools that the scorer avoids);
* ``tf_function`` and ``eager``: :meth:`RankerScorer.score` with those backends;
* ``model_predict``: ``keras.Model.predict`` (a few calls only: it is slow).

Per-request overhead is the intercept of a least-squares line of the service's
median time against the number of candidates; throughput is candidates per
second of each forward pass at each size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import log, stats_ms, time_calls
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from shared.model.candidates import CandidateSet

SIZES = (50, 200, 500, 1000)


def _candidates(engine: Any, m: int, rng: np.random.Generator) -> CandidateSet:
    names = engine.source_names
    s = len(names)
    n = len(engine.catalogue)
    items = rng.choice(n, size=min(m, n), replace=False)
    m = len(items)
    found = rng.random((m, s)) < 0.4
    found[np.arange(m), rng.integers(s, size=m)] = True
    ranks = np.where(found, rng.integers(1, engine.missing_rank, size=(m, s)),
                     engine.missing_rank).astype(np.int32)
    scores = np.where(found, rng.random((m, s)), 0.0).astype(np.float32)
    mask = (found.astype(np.int64) << np.arange(s, dtype=np.int64)[None, :]).sum(axis=1)
    fused = np.sort(rng.random(m).astype(np.float32))[::-1].copy()
    return CandidateSet(items.astype(np.int64), scores, ranks, mask, fused, names,
                        engine.missing_rank)


def _request(engine: Any, user_id: str, history: list[str], cs: CandidateSet) -> Any:
    from shared.contracts.internal_v1 import CandidateColumns, RankRequest

    found = cs.ranks < cs.missing_rank  # [m, s]
    names = cs.source_names
    columns = CandidateColumns(
        item_ids=[str(i) for i in engine.catalogue.item_ids[cs.item_idx]],
        scores=cs.fused.tolist(),
        sources=[names[int(np.argmax(row))] for row in found],
        source_scores={n: [float(cs.scores[j, c]) if found[j, c] else None
                           for j in range(len(found))] for c, n in enumerate(names)},
        source_ranks={n: [int(cs.ranks[j, c]) if found[j, c] else None
                          for j in range(len(found))] for c, n in enumerate(names)})
    return RankRequest(user_id=user_id, history=history, columns=columns)


def _one_thread(scorer: Any, feats: dict[str, np.ndarray]) -> Any:
    """The numpy graph alone (timed with BLAS held to one thread for the whole loop)."""
    return scorer._numpy._forward(feats)


def _blas_one(scorer: Any) -> contextlib.AbstractContextManager[Any]:
    if scorer._blas is None:
        return contextlib.nullcontext()
    return scorer._blas.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def _paths(engine: Any, req: Any, upos: int, hist_pos: np.ndarray, cs: CandidateSet,
           feats: dict[str, np.ndarray], checked: dict[str, np.ndarray],
           ) -> dict[str, Callable[[], Any]]:
    scorer = engine.scorer
    return {
        "service_rank": partial(engine.rank, req),
        "features": partial(scorer.features, upos, hist_pos, cs),
        "scorer_numpy": partial(scorer.score, feats, "numpy"),
        "plain_numpy": partial(_one_thread, scorer, checked),
        "plain_numpy_blas_threads": partial(scorer._numpy._forward, checked),
        "tf_function": partial(scorer.score, feats, "tf_function"),
        "eager": partial(scorer.score, feats, "eager"),
    }


def run_ranker_bench(bundle_path: Path, sizes: tuple[int, ...] = SIZES, calls: int = 100,
                     predict_calls: int = 5, seed: int = 0) -> dict[str, Any]:
    """Time every path at every size; returns JSON-ready results."""
    from services.ranking.engine import RankingEngine
    from services.ranking.settings import RankingSettings

    bundle = load_bundle(bundle_path, verify=False)
    engine = RankingEngine(RankingSettings(artifacts=str(bundle.root), scorer="numpy"), bundle)
    scorer = engine.scorer
    users = bundle.load_parquet(L.USERS)
    rng = np.random.default_rng(seed)
    row = int(np.argmax([len(h) for h in users["history"]]) if len(users) else 0)
    user_id = str(users["user_id"].iat[row])
    history = [str(x) for x in users["history"].iat[row]][-50:]
    hist_pos = engine.catalogue.positions(history)
    upos = engine.user_position(user_id)
    out: list[dict[str, Any]] = []
    for m in sizes:
        cs = _candidates(engine, m, rng)
        req = _request(engine, user_id, history, cs)
        feats = scorer.features(upos, hist_pos, cs)
        checked = scorer._feed(feats)
        paths = _paths(engine, req, upos, hist_pos, cs, feats, checked)
        ref = scorer.score(feats, "numpy")
        gap = float(np.max(np.abs(ref - scorer.score(feats, "tf_function"))))
        times: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(2):  # two interleaved rounds
            for name, fn in paths.items():
                n = calls // 2 if name != "eager" else max(calls // 10, 5)
                with _blas_one(scorer) if name == "plain_numpy" else contextlib.nullcontext():
                    times[name] += time_calls(fn, n, warmup=2)
        times["model_predict"] = time_calls(
            partial(scorer.model.predict, checked, verbose=0), predict_calls, warmup=1)
        rec: dict[str, Any] = {"candidates": len(cs), "max_abs_diff_numpy_vs_tf": gap}
        for name, ts in times.items():
            st = stats_ms(ts)
            st["candidates_per_s"] = round(len(cs) / (st["p50_ms"] / 1000.0))
            rec[name] = st
        base = rec["plain_numpy"]["p50_ms"]
        rec["ratio_vs_plain_numpy"] = {k: round(rec[k]["p50_ms"] / base, 2) for k in times}
        log(f"ranker m={len(cs)}: service {rec['service_rank']['p50_ms']:.2f} ms, plain numpy "
            f"{base:.3f} ms, tf.function {rec['tf_function']['p50_ms']:.2f} ms, predict "
            f"{rec['model_predict']['p50_ms']:.1f} ms")
        out.append(rec)
    xs = np.asarray([r["candidates"] for r in out], np.float64)
    ys = np.asarray([r["service_rank"]["p50_ms"] for r in out], np.float64)
    slope, intercept = np.polyfit(xs, ys, 1) if len(xs) > 1 else (ys[0] / xs[0], 0.0)
    return {"bundle": bundle.version, "n_items": len(engine.catalogue),
            "ranker_inputs": {k: list(v.shape) for k, v in feats.items()},
            "sizes": out,
            "service_fit": {"overhead_ms": round(float(intercept), 3),
                            "per_candidate_us": round(float(slope) * 1000, 2)}}


def plot_ranker(result: dict[str, Any], path: Path) -> Path:
    """Median ms per request against the number of candidates, per path (log y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r["candidates"] for r in result["sizes"]]
    for name in ("service_rank", "features", "scorer_numpy", "plain_numpy",
                 "plain_numpy_blas_threads", "tf_function",
                 "eager", "model_predict"):
        ax.plot(xs, [r[name]["p50_ms"] for r in result["sizes"]], "o-", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("candidates per request")
    ax.set_ylabel("median ms per request (log scale)")
    ax.set_title("ranker cost per request (same run, same weights)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
