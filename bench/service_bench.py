"""The real retrieval service over a large catalogue: start-up, memory, latency.

Starts ``services.retrieval`` as its own uvicorn process on the bundle (Annoy
indexes and vectors memory-mapped), measures the time to ``/health/ready``,
resident memory after loading and after traffic, then ``POST /v1/candidates``
latency from this process (HTTP keep-alive, one request at a time):

* ``cold``: known users asked for the first time (query tower runs, vector cached);
* ``warm``: the same users again (user vector from the cache);
* ``paced``: a mix of known users (70%) and anonymous users with a history (30%)
  sent at a fixed rate; latency is measured from each request's scheduled time,
  so a slow response also delays the following ones (no coordinated omission).

Each phase also reports the median of every stage of the service's own
``Server-Timing`` header (cache, query tower, ANN, other sources, merge, build).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import log, peak_rss_mb, rss_mb, stats_ms
from bench.workload import candidate_requests, user_histories
from harness.processes import DEFAULT_REDIS_URL, redis_available, running_stack
from shared.serving.timing import parse_header


class Phase:
    """Latencies, errors and ``Server-Timing`` stages of one phase's requests."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.errors = 0
        self.stages: dict[str, list[float]] = defaultdict(list)

    def record(self, seconds: float, response: httpx.Response) -> None:
        self.times.append(seconds)
        self.errors += response.status_code != 200
        for name, sec in parse_header(response.headers.get("server-timing", "")).items():
            self.stages[name].append(sec)

    def summary(self, **extra: Any) -> dict[str, Any]:
        """Latency statistics and the median ms of each server-side stage."""
        n = max(len(self.times), 1)
        stages = {k: round(float(np.median(v)) * 1000, 3) for k, v in self.stages.items()
                  if len(v) >= n // 2}
        return {**stats_ms(self.times), "errors": self.errors,
                "server_stages_median_ms": stages, **extra}


def _post_all(client: httpx.Client, bodies: list[dict[str, Any]]) -> Phase:
    phase = Phase()
    for body in bodies:
        t0 = time.perf_counter()
        r = client.post("/v1/candidates", json=body)
        phase.record(time.perf_counter() - t0, r)
    return phase


def _paced(client: httpx.Client, bodies: list[dict[str, Any]], rate: float) -> tuple[Phase, float]:
    phase = Phase()
    start = time.perf_counter()
    for i, body in enumerate(bodies):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        r = client.post("/v1/candidates", json=body)
        phase.record(time.perf_counter() - due, r)
    elapsed = time.perf_counter() - start
    return phase, len(bodies) / elapsed


def run_service_bench(artifacts: Path, workdir: Path, *, users: int = 300, paced: int = 600,
                      rate: float = 20.0, k: int = 300, verify: bool = True,
                      seed: int = 0, backend: str = "auto",
                      huge_pages: bool = True) -> dict[str, Any]:
    """Start retrieval on ``artifacts``, drive it, stop it; returns JSON-ready results.

    ``backend`` is the service's ``HYBRIDREC_ANN_BACKEND`` (auto: the bundle's HNSW
    graphs when it has them); ``huge_pages`` its ``HYBRIDREC_HUGE_PAGES``.
    """
    redis_url = DEFAULT_REDIS_URL if redis_available() else None
    env = {"HYBRIDREC_VERIFY_BUNDLE": "true" if verify else "false",
           "HYBRIDREC_ANN_BACKEND": backend,
           "HYBRIDREC_HUGE_PAGES": "true" if huge_pages else "false"}
    t0 = time.perf_counter()
    with running_stack(
        artifacts, workdir, redis_url=redis_url, names=("retrieval",), serve=True,
        **{"HYBRIDREC_LOG_LEVEL": "warning", **env},
    ) as svcs:
        svc = svcs["retrieval"]
        startup = time.perf_counter() - t0
        rss_ready = rss_mb(svc.pid)
        log(f"retrieval ready in {startup:.1f} s (verify={verify}), RSS {rss_ready:.0f} MB")
        ids, _ = user_histories(artifacts)
        rng = np.random.default_rng(seed)
        picked = rng.choice(ids, size=min(users, len(ids)), replace=False)
        known = [{"user_id": str(u), "k": k} for u in picked]
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            _post_all(client, [{"history": [str(x) for x in
                                            user_histories(artifacts)[1][0][-5:]], "k": k}] * 10)
            cold = _post_all(client, known)
            warm = _post_all(client, known)
            bodies = candidate_requests(artifacts, paced, seed=seed + 1, k=k)
            mixed, achieved = _paced(client, bodies, rate)
            sample = client.post("/v1/candidates", json=known[0]).json()
            checks = client.get("/health/ready").json().get("checks", {})
            search = checks.get("search")
        result: dict[str, Any] = {
            "ann_backend": backend, "search": search,
            "huge_pages": huge_pages, "memory_check": checks.get("huge_pages"),
            "startup_s": round(startup, 2), "verify_bundle": verify,
            "redis": bool(redis_url), "k": k,
            "rss_ready_mb": rss_ready, "rss_after_traffic_mb": rss_mb(svc.pid),
            "peak_rss_mb": peak_rss_mb(svc.pid),
            "cold_known_users": cold.summary(),
            "warm_known_users": warm.summary(),
            "paced_mix": mixed.summary(target_rps=rate, achieved_rps=round(achieved, 1)),
            "sample_response": {"n_items": len(sample["columns"]["item_ids"]),
                                "cache": sample.get("cache"),
                                "sources": sorted(sample["columns"]["source_scores"])},
        }
        log(f"retrieval ({search}) /v1/candidates: cold p50 "
            f"{result['cold_known_users']['p50_ms']:.1f} ms, "
            f"warm p50 {result['warm_known_users']['p50_ms']:.1f} ms, paced p99 "
            f"{result['paced_mix']['p99_ms']:.1f} ms, RSS {result['rss_after_traffic_mb']:.0f} MB")
        return result
