"""The gateway's last-minute traffic figures, from a real Prometheus registry and app."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.gateway.traffic import (
    EVENT_ROUTE,
    TrafficWindow,
    count_degraded,
    install_degraded_counter,
    quantile,
)

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RECS = "/v1/users/{user_id}/recommendations"


def _app() -> tuple[FastAPI, Histogram, Counter]:
    app = FastAPI()
    app.state.metrics_registry = registry = CollectorRegistry()
    latency = Histogram(
        "hybridrec_http_request_seconds",
        "latency",
        ["service", "method", "route", "status"],
        registry=registry,
        buckets=BUCKETS,
    )
    cache = Counter("hybridrec_result_cache_answers", "answers", ["outcome"], registry=registry)
    install_degraded_counter(app)
    return app, latency, cache


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 100 observations: 50 up to 10 ms, 49 more up to 20 ms, 1 above 1 s.
    buckets = {0.01: 50.0, 0.02: 99.0, 1.0: 99.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.25, buckets) == pytest.approx(0.005)
    assert quantile(0.9, buckets) == pytest.approx(0.01 + 0.01 * (40 / 49))
    assert quantile(0.999, buckets) == 1.0  # in +Inf: the largest finite bound
    assert quantile(0.5, {0.01: 0.0, float("inf"): 0.0}) is None


def test_window_counts_only_what_happened_since_its_oldest_snapshot() -> None:
    app, latency, cache = _app()
    window = TrafficWindow(app.state.metrics_registry, window_s=60)
    for _ in range(10):
        latency.labels("gateway", "GET", RECS, "200").observe(0.004)
    latency.labels("gateway", "GET", "/v1/items", "200").observe(3.0)  # not a recommendation
    for _ in range(4):
        latency.labels("gateway", "POST", EVENT_ROUTE, "202").observe(0.002)
    latency.labels("gateway", "POST", EVENT_ROUTE, "422").observe(0.001)  # refused: no event
    cache.labels("hit").inc(3)
    cache.labels("miss").inc(7)
    start = window.snaps[0].t
    first = window.stats(now=start + 10)
    assert first.window_s == pytest.approx(10)
    assert first.requests_per_s == pytest.approx(1.0) and first.total_requests == 10
    assert first.events_per_s == pytest.approx(0.4) and first.total_events == 4
    assert first.cache_hit_rate == pytest.approx(0.3)
    assert first.p50_ms is not None and 2.5 < first.p50_ms <= 5.0

    # 70 s later only the traffic after the snapshot at +10 s counts.
    for _ in range(5):
        latency.labels("gateway", "POST", "/v1/recommendations", "200").observe(0.2)
    cache.labels("hit").inc(5)
    later = window.stats(now=start + 80)
    assert later.window_s == pytest.approx(70)
    assert later.requests_per_s == pytest.approx(5 / 70) and later.total_requests == 15
    assert later.events_per_s == 0 and later.cache_hit_rate == 1.0
    assert later.p50_ms is not None and 100 < later.p50_ms <= 250


def test_degraded_answers_are_counted_once_by_their_reasons() -> None:
    app, _, _ = _app()
    window = TrafficWindow(app.state.metrics_registry)
    count_degraded(app, b'{"user_id":1,"items":[],"model_version":"v","degraded":[]}')
    count_degraded(app, b'{"items":[],"degraded":["ranking"],"request_id":null}')
    count_degraded(app, b'{"items":[],"degraded":["ranking"]}')
    count_degraded(app, b'{"items":[],"degraded":["retrieval","cache"]}')
    stats = window.stats()
    assert stats.degraded_answers == 3
    assert stats.degraded_by_reason == {"ranking": 2, "retrieval+cache": 1}
