"""The gateway's recent traffic, read from its own Prometheus registry (for ``/v1/status``).

Each ``/v1/status`` call takes a snapshot of the counters and of the latency
histogram of the recommendation routes; the figures it answers are the
differences against the oldest snapshot of the last minute (or the process start),
so a dashboard polling every few seconds sees a sliding one-minute window. The
figures are this process's: with several gateway processes each answers its own.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from shared.contracts.status_v1 import TrafficStats

WINDOW_S = 60.0
RECOMMEND_ROUTES = {"/v1/users/{user_id}/recommendations", "/v1/recommendations"}
EVENT_ROUTE = "/v1/users/{user_id}/events"
_DEGRADED = re.compile(rb'"degraded":\[([^\]]*)\]')
_STARTED = time.monotonic()


@dataclass
class Snapshot:
    """Cumulative counts at one moment."""

    t: float
    requests: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count
    events: float = 0.0
    cache: dict[str, float] = field(default_factory=dict)
    degraded: dict[str, float] = field(default_factory=dict)


def install_degraded_counter(app: FastAPI) -> None:
    """Register ``hybridrec_degraded_answers_total`` (by reason) on the app's registry."""
    app.state.degraded_answers = Counter(
        "hybridrec_degraded_answers",
        "Degraded recommendation answers, by their reasons joined with + (ranking, "
        "retrieval, cache, overload).",
        ["reason"],
        registry=app.state.metrics_registry,
    )


def count_degraded(app: FastAPI, body: bytes) -> None:
    """Count the reasons of a recommendation answer's ``degraded`` list (a JSON body)."""
    counter: Counter | None = getattr(app.state, "degraded_answers", None)
    found = _DEGRADED.search(body)
    if counter is None or found is None or not found.group(1).strip():
        return
    reasons = [r.strip().strip(b'"').decode("ascii", "replace") for r in found.group(1).split(b",")]
    counter.labels("+".join(reasons)).inc()  # one count per answer


def snapshot(registry: CollectorRegistry, now: float | None = None) -> Snapshot:
    """The counts of ``registry`` now."""
    snap = Snapshot(t=time.monotonic() if now is None else now)
    for metric in registry.collect():
        for s in metric.samples:
            if metric.name == "hybridrec_http_request_seconds":
                route = s.labels.get("route")
                if s.name.endswith("_bucket") and route in RECOMMEND_ROUTES:
                    le = float(s.labels["le"])
                    snap.buckets[le] = snap.buckets.get(le, 0.0) + s.value
                elif s.name.endswith("_count") and route in RECOMMEND_ROUTES:
                    snap.requests += s.value
                elif (
                    s.name.endswith("_count")
                    and route == EVENT_ROUTE
                    and s.labels.get("status") == "202"
                ):
                    snap.events += s.value
            elif metric.name == "hybridrec_result_cache_answers" and s.name.endswith("_total"):
                outcome = s.labels["outcome"]
                snap.cache[outcome] = snap.cache.get(outcome, 0.0) + s.value
            elif metric.name == "hybridrec_degraded_answers" and s.name.endswith("_total"):
                reason = s.labels["reason"]
                snap.degraded[reason] = snap.degraded.get(reason, 0.0) + s.value
    return snap


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile`` over cumulative buckets (seconds), None with no observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return prev_bound  # above the largest finite bucket: its bound is all we know
            inside = count - prev_count
            share = (rank - prev_count) / inside if inside > 0 else 1.0
            return prev_bound + (bound - prev_bound) * share
        prev_bound, prev_count = bound, count
    return prev_bound


class TrafficWindow:
    """Snapshots of the last minute; :meth:`stats` compares now with the oldest."""

    def __init__(self, registry: CollectorRegistry, window_s: float = WINDOW_S) -> None:
        self.registry = registry
        self.window_s = window_s
        self.snaps: deque[Snapshot] = deque([Snapshot(t=_STARTED)])

    def stats(self, now: float | None = None) -> TrafficStats:
        """The traffic since the oldest snapshot of the window (then keeps this one)."""
        cur = snapshot(self.registry, now)
        while len(self.snaps) > 1 and self.snaps[1].t <= cur.t - self.window_s:
            self.snaps.popleft()
        base = self.snaps[0]
        self.snaps.append(cur)
        span = max(cur.t - base.t, 1e-3)
        buckets = {b: v - base.buckets.get(b, 0.0) for b, v in cur.buckets.items()}
        p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
        answers = {k: v - base.cache.get(k, 0.0) for k, v in cur.cache.items()}
        n_answers = sum(answers.values())
        degraded = {
            k: int(v - base.degraded.get(k, 0.0))
            for k, v in cur.degraded.items()
            if v > base.degraded.get(k, 0.0)
        }
        return TrafficStats(
            window_s=round(span, 3),
            requests_per_s=(cur.requests - base.requests) / span,
            p50_ms=p50 * 1000 if p50 is not None else None,
            p99_ms=p99 * 1000 if p99 is not None else None,
            cache_hit_rate=answers.get("hit", 0.0) / n_answers if n_answers else None,
            degraded_answers=sum(degraded.values()),
            degraded_by_reason=degraded,
            events_per_s=(cur.events - base.events) / span,
            total_requests=int(cur.requests),
            total_events=int(cur.events),
        )
