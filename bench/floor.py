"""The floor of a computed recommendation: the model work alone, in one process.

A computed answer at the gateway costs the model work (query tower, searches, the other
candidate sources, the merge, the ranker's features and forward pass) plus what the split
into services adds (three HTTP hops, JSON, Redis round trips, validation, glue). This
module measures the first part alone: the services' own engine objects
(:class:`~services.retrieval.engine.RetrievalEngine` with the functions of
:mod:`services.retrieval.pipeline`, and :class:`~services.ranking.engine.RankingEngine`'s
scorer), loaded from the same bundle and called in one process, with no HTTP, no JSON and
no Redis: histories come from the bundle and known users' query vectors are kept in a dict,
as the services keep them in Redis (so the query tower runs as often as it does there).

The requests are the ones :mod:`bench.loadgen` sends for the same ids, mix and seed
(:func:`floor_requests` draws them with the generator's own code), so the floor and the
services' CPU per computed answer (:mod:`bench.computed`) describe the same work.

CLI (prints one JSON line; ``bench.computed`` runs it in a child process so that its thread
limits, imports and memory are its own)::

    python -m bench.floor --artifacts BUNDLE_ROOT [--requests 600] [--seed 7] [--paced 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Pieces of the floor timed per request (wall ms, medians in the report).
PARTS = ("history", "query_tower", "sources", "merge", "features", "score")
#: Recommendations per answer and candidates asked of retrieval (the gateway's defaults).
K = 10
N_CANDIDATES = 200


@dataclass(frozen=True)
class FloorRequest:
    """One recommendation request: a known user (``user_id``) or a session's recent items."""

    user_id: str | None
    recent: tuple[str, ...] = ()


def floor_requests(
    users: list[str], items: list[str], n: int, mix: dict[str, float], seed: int
) -> list[FloorRequest]:
    """The first ``n`` recommendation requests :mod:`bench.loadgen` sends for these inputs.

    Uses the generator's own picker and request builder (uniform users, 3-5 recent items
    for anonymous sessions); kinds other than recommendations are skipped.
    """
    from bench.loadgen import _Picker, _request

    rng = random.Random(seed)
    kinds = [k for k, w in mix.items() if w > 0]
    weights = [mix[k] for k in kinds]
    upick, ipick = _Picker(users, 0.0), _Picker(items, 0.0)
    out: list[FloorRequest] = []
    while len(out) < n:
        kind = rng.choices(kinds, weights)[0]
        _, path, body = _request(kind, rng, upick, ipick)
        if kind == "user_recs":
            # the id as the generator wrote it: /v1/users/{id}/recommendations?k=...
            out.append(FloorRequest(path[len("/v1/users/") : path.rindex("/recommendations")]))
        elif kind == "anon_recs" and body is not None:
            out.append(FloorRequest(None, tuple(json.loads(body)["recent_item_ids"])))
    return out


@dataclass
class Floor:
    """The retrieval and ranking engines of one bundle, called directly."""

    retrieval: Any
    ranking: Any
    vectors: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls, artifacts: Path) -> Floor:
        """Load both engines from ``artifacts`` (a bundle root or folder), BLAS single-threaded."""
        from shared.serving.process_tuning import limit_compute_threads

        limit_compute_threads(1, import_tensorflow=True)  # as the services do, before loads
        from services.ranking.engine import RankingEngine
        from services.ranking.settings import RankingSettings
        from services.retrieval.engine import RetrievalEngine
        from services.retrieval.settings import RetrievalSettings
        from shared.contracts.bundle import load_bundle

        bundle = load_bundle(artifacts, verify=False)
        # No stores: the floor reads histories from the bundle and caches vectors in a dict.
        retrieval = RetrievalEngine(
            RetrievalSettings(artifacts=str(artifacts)), bundle, None, None  # type: ignore[arg-type]
        )
        ranking = RankingEngine(RankingSettings(artifacts=str(artifacts)), bundle)
        return cls(retrieval, ranking)

    async def answer(self, req: FloorRequest, parts: dict[str, float] | None = None) -> np.ndarray:
        """The top :data:`K` item ids, as retrieval then ranking compute them (no exclusions
        beyond ``exclude_seen``, no genre filter, no fresh items: the load's requests)."""
        from services.retrieval import pipeline
        from shared.contracts.internal_v1 import dedupe_keep_last

        e, r = self.retrieval, self.ranking
        clock = _Clock(parts)
        upos = e.user_position(req.user_id)
        # histories are catalogue positions; ids are strings (issue 19)
        known = e.catalogue.item_ids[e.histories[upos]].tolist() if upos >= 0 else []
        history = dedupe_keep_last(known + list(req.recent))
        pos = e.catalogue.positions(history)
        hist_pos = pos[pos >= 0]
        exclude = np.zeros(e.n_items, dtype=bool)
        exclude[e.seen_positions(upos)] = True
        exclude[hist_pos] = True
        clock.lap("history")
        cacheable = req.user_id is not None and not req.recent
        vec = self.vectors.get(req.user_id) if cacheable and req.user_id is not None else None
        if vec is None:
            vec = e.query_tower.encode(
                e.encoder, [req.user_id], [hist_pos[-e.encoder.history_length :]], [None]
            )[0]
            if cacheable and req.user_id is not None:
                self.vectors[req.user_id] = vec
        clock.lap("query_tower")
        lists = await pipeline.source_lists(e, vec, hist_pos, exclude, None)
        clock.lap("sources")
        cs = pipeline.merge(e, lists, exclude, None, N_CANDIDATES)
        clock.lap("merge")
        if not len(cs):
            return np.zeros(0, np.int64)
        feats = r.scorer.features(r.user_position(req.user_id), hist_pos[-1000:], cs)
        clock.lap("features")
        logits = r.scorer.score(feats)
        top = np.argsort(-logits, kind="stable")[:K]
        clock.lap("score")
        return np.asarray(r.catalogue.item_ids[cs.item_idx[top]])


class _Clock:
    """Adds the wall time since the last lap to ``parts[name]`` (no-op without ``parts``)."""

    def __init__(self, parts: dict[str, float] | None) -> None:
        self.parts, self.t = parts, time.perf_counter()

    def lap(self, name: str) -> None:
        if self.parts is not None:
            now = time.perf_counter()
            self.parts[name] = self.parts.get(name, 0.0) + (now - self.t) * 1000.0
            self.t = now


async def measure(
    floor: Floor, reqs: list[FloorRequest], warmup: int, paced_rates: tuple[float, ...] = ()
) -> dict[str, Any]:
    """CPU and wall time per answer over ``reqs`` after ``warmup`` unmeasured ones.

    Before measuring, every known user of ``reqs`` is answered once, so their query vectors
    are cached (the services' Redis cache is warm after their warm-up traffic too).

    CPU is the process's (every thread's) CPU time, as the services' is read from /proc.
    The answers run back to back (``cpu_ms_per_answer``, caches hot), then once more for
    each of ``paced_rates``, spaced at that many answers per second as the load generator
    spaces requests (``paced``: a process woken 100 times a second starts each answer with
    colder CPU caches, so the same work costs more; the services are measured that way).
    """
    for req in reqs[:warmup]:
        await floor.answer(req)
    # Every known user's vector cached, as in the services' Redis after their warm-up.
    for user in {r.user_id for r in reqs if r.user_id is not None}:
        await floor.answer(FloorRequest(user))
    reqs = reqs[warmup:]
    cpu: list[float] = []
    wall: list[float] = []
    parts: dict[str, list[float]] = {p: [] for p in PARTS}
    c_all, w_all = time.process_time(), time.perf_counter()
    for req in reqs:
        got: dict[str, float] = {}
        c0, w0 = time.process_time(), time.perf_counter()
        await floor.answer(req, got)
        cpu.append((time.process_time() - c0) * 1000.0)
        wall.append((time.perf_counter() - w0) * 1000.0)
        for p in PARTS:
            parts[p].append(got.get(p, 0.0))
    cpu_total = (time.process_time() - c_all) * 1000.0
    wall_total = (time.perf_counter() - w_all) * 1000.0
    paced = {f"{rate:g}": await _paced(floor, reqs, rate) for rate in paced_rates}
    return {
        "requests": len(reqs),
        "anonymous": sum(1 for r in reqs if r.user_id is None),
        "cpu_ms_per_answer": round(cpu_total / len(reqs), 4),
        "cpu_ms_p50": round(float(np.median(cpu)), 4),
        "wall_ms_per_answer": round(wall_total / len(reqs), 4),
        "wall_ms_p50": round(float(np.median(wall)), 4),
        "wall_ms_p99": round(float(np.percentile(wall, 99)), 4),
        "parts_mean_ms": {p: round(float(np.mean(v)), 4) for p, v in parts.items()},
        "parts_median_ms": {p: round(float(np.median(v)), 4) for p, v in parts.items()},
        **({"paced": paced} if paced else {}),
    }


async def _paced(floor: Floor, reqs: list[FloorRequest], rate: float) -> dict[str, Any]:
    """CPU per answer with the answers spaced at ``rate`` per second (sleeping between)."""
    c0, t0 = time.process_time(), time.monotonic()
    for i, req in enumerate(reqs):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        await floor.answer(req)
    return {"rate": rate, "cpu_ms_per_answer": round(
        (time.process_time() - c0) * 1000.0 / len(reqs), 4)}  # fmt: skip


def run_floor(
    artifacts: Path, *, n: int = 600, warmup: int = 100, seed: int = 7,
    mix: dict[str, float] | None = None, paced_rates: tuple[float, ...] = (),
) -> dict[str, Any]:
    """Load the engines and measure ``n`` answers of the load generator's mix (report dict),
    back to back and at each of ``paced_rates`` answers per second."""
    from bench.e2e import RECS_MIX
    from bench.loadgen import ids_from_bundle

    users, items = ids_from_bundle(artifacts)
    mix = mix or dict(RECS_MIX)
    t0 = time.perf_counter()
    floor = Floor.load(artifacts)
    load_s = time.perf_counter() - t0
    reqs = floor_requests(users, items, n + warmup, mix, seed)
    report = asyncio.run(measure(floor, reqs, warmup, paced_rates))
    return {"benchmark": "floor", "artifacts": str(artifacts), "mix": mix, "seed": seed,
            "load_s": round(load_s, 1), **report}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """CLI: measure and print the report as one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--artifacts", type=Path, required=True, help="bundle root or folder")
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--paced", type=float, action="append", default=[],
                    help="also measure with the answers spaced at this many per second")
    args = ap.parse_args(argv)
    rep = run_floor(args.artifacts.resolve(), n=args.requests, warmup=args.warmup, seed=args.seed,
                    paced_rates=tuple(args.paced))  # fmt: skip
    print(json.dumps(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
