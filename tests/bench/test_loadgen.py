"""bench.loadgen against a real gateway stack: the report's fields, stage timings, loopback only.

A few seconds of low-rate load from a separate process (no timing is asserted:
the machine is shared); the services' ``Server-Timing`` header must carry the
gateway's own stages and those of retrieval and ranking.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.e2e import BREAKDOWN, OUTSIDE, breakdown, breakdown_per_request
from bench.loadgen import (
    CLIENT_KEY,
    KINDS,
    LoadSpec,
    check_loopback,
    ids_from_bundle,
    run_load,
)
from harness.processes import ServiceProcess, running_stack
from shared.serving.timing import parse_header

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    prefix = f"hrload-{uuid.uuid4().hex[:8]}"
    with running_stack(
        small_bundle, tmp_path_factory.mktemp("loadgen"), redis_url=redis_url, prefix=prefix
    ) as procs:
        yield procs


def test_gateway_answers_carry_every_stage(
    stack: dict[str, ServiceProcess], small_bundle: Path
) -> None:
    users, _ = ids_from_bundle(small_bundle, n=5)
    r = httpx.get(f"{stack['gateway'].url}/v1/users/{users[0]}/recommendations", timeout=30)
    assert r.status_code == 200 and r.json()["degraded"] == [], r.text
    stages = parse_header(r.headers["server-timing"])
    want = {
        "total", "retrieval", "ranking", "codec", "serialise",
        "retrieval.total", "retrieval.cache", "retrieval.ann", "retrieval.sources",
        "retrieval.merge", "retrieval.build", "retrieval.fresh",
        "ranking.total", "ranking.features", "ranking.score",
    }  # fmt: skip
    assert want <= set(stages), sorted(stages)
    assert all(v >= 0 for v in stages.values())
    # every service times its own requests too
    live = httpx.get(f"{stack['retrieval'].url}/health/live", timeout=10)
    assert "total" in parse_header(live.headers["server-timing"])
    # a cache miss runs the query tower: a user never seen in this run
    r = httpx.get(f"{stack['gateway'].url}/v1/users/{users[1]}/recommendations", timeout=30)
    assert "retrieval.query_tower" in parse_header(r.headers["server-timing"])


def test_low_rate_load_report(stack: dict[str, ServiceProcess], small_bundle: Path) -> None:
    users, items = ids_from_bundle(small_bundle, n=50)
    spec = LoadSpec(
        url=stack["gateway"].url,
        rate=15.0,
        duration_s=3.0,
        warmup_s=1.0,
        mix={"user_recs": 3, "anon_recs": 1, "similar": 1, "item": 1, "event": 1, "live": 1},
        user_ids=users,
        item_ids=items,
        pids={name: p.proc.pid for name, p in stack.items() if p.proc is not None},
        sample_every_s=0.5,
        keep_stage_samples=True,
        skew=1.5,
    )
    report = run_load(spec)
    assert report["sent"] == 45 and report["rate_target"] == 15.0
    assert 0 < report["completed"] <= report["sent"]
    assert report["achieved_rps"] > 0
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "count"):
        assert key in report["latency"] and key in report["latency_from_send"]
    assert set(report["by_kind"]) == set(spec.mix) and set(spec.mix) <= set(KINDS)
    # the generated requests are all valid: no 4xx (a slow box may time some out)
    assert not [s for s in report["errors"]["by_status"] if s.startswith("4")], report["errors"]
    assert {"total", "by_reason"} <= set(report["degraded"])
    assert "user_recs" in report["stages_ms"] and "total" in report["stages_ms"]["user_recs"]
    for name in ("gateway", "retrieval", "ranking"):
        mem = report["memory"][name]
        assert mem["rss_after_warmup_mb"] > 0 and isinstance(mem["growth_pct"], float)
        assert report["cpu"][name]["cores"] >= 0
        kernel = report["kernel"][name]
        assert kernel["major_faults"] >= 0 and 0.0 <= kernel["system_cpu_share"] <= 1.0
    assert {"cpu_s", "send_lag_p99_ms", "dropped"} <= set(report["generator"])
    per_request = breakdown_per_request(report["stage_samples"])
    assert per_request["n"] > 0 and set(per_request["median_ms"]) == set(BREAKDOWN)
    assert per_request["tail"]["n"] >= 1 and OUTSIDE in per_request["tail"]["median_ms"]
    # Skewed users repeat, so some answers come from the gateway's result cache ...
    outcomes = report["result_cache"]["by_kind"]["user_recs"]
    assert set(outcomes) <= {"hit", "miss"} and outcomes.get("hit", 0) > 0, report["result_cache"]
    assert 0 < report["result_cache"]["hit_rate"] <= 1
    # ... and none with Cache-Control: no-cache (the uncached baseline).
    base = run_load(
        LoadSpec(**{**spec.__dict__, "no_cache": True, "duration_s": 2.0, "skew": 1.5})
    )
    assert base["result_cache"]["hit_rate"] == 0 and base["no_cache"] is True
    assert sum(base["result_cache"]["by_kind"]["user_recs"].values()) > 0


def test_only_loopback_targets() -> None:
    check_loopback("http://127.0.0.1:8000")
    check_loopback("http://localhost:8000")
    check_loopback("http://[::1]:8000")
    for bad in ("http://10.0.0.1:8000", "http://192.168.1.2", "http://example.org",
                "https://127.0.0.1:8000"):  # fmt: skip
        with pytest.raises(ValueError):
            check_loopback(bad)
    spec = LoadSpec(url="http://10.1.2.3:8000", rate=10, duration_s=1, mix={"live": 1})
    with pytest.raises(ValueError, match="loopback"):
        run_load(spec)  # refused before any process starts or packet leaves


def test_bounds_and_mix_are_checked() -> None:
    ok = {"url": "http://127.0.0.1:1", "rate": 10.0, "duration_s": 1.0, "mix": {"live": 1.0}}
    LoadSpec(**ok).validate()  # type: ignore[arg-type]
    for change in ({"rate": 0.0}, {"duration_s": 7200.0}, {"mix": {"nope": 1.0}},
                   {"mix": {"user_recs": 1.0}}, {"skew": -1.0}):  # fmt: skip
        with pytest.raises(ValueError):
            LoadSpec(**{**ok, **change}).validate()  # type: ignore[arg-type]


def test_breakdown_groups_the_gateway_stages() -> None:
    stages = {
        "total": 20.0, "retrieval": 12.0, "ranking": 5.0, "codec": 1.0, "serialise": 0.5,
        "retrieval.total": 10.0, "retrieval.cache": 0.5, "retrieval.query_tower": 2.0,
        "retrieval.ann": 3.0, "retrieval.serialise": 0.5, "ranking.total": 4.0,
        "ranking.serialise": 0.2,
    }  # fmt: skip
    got = breakdown(stages)
    assert got == pytest.approx({
        "gateway": 1.5, "internal HTTP": 3.0, "cache (Redis)": 0.5, "query tower": 2.0,
        "ANN": 3.0, "other sources + merge": 4.0, "ranking": 3.8, "serialisation": 2.2,
    })  # fmt: skip
    assert sum(got.values()) == pytest.approx(stages["total"])


def test_tail_breakdown_is_over_the_slowest_requests() -> None:
    def sample(client: float, ann: float) -> dict[str, float]:
        return {"total": ann + 1.0, "retrieval": ann, "retrieval.total": ann,
                "retrieval.ann": ann, CLIENT_KEY: client}  # fmt: skip

    fast = [sample(5.0 + i * 0.01, 2.0) for i in range(96)]
    slow = [sample(40.0 + i, 30.0) for i in range(4)]
    got = breakdown_per_request({"user_recs": fast[:50], "anon_recs": [*fast[50:], *slow]},
                                tail_share=0.04)  # fmt: skip
    assert got["n"] == 100 and got["median_ms"]["ANN"] == 2.0
    tail = got["tail"]
    assert tail["n"] == 4 and tail["client_min_ms"] == 40.0
    assert tail["median_ms"]["ANN"] == 30.0
    # client 41.5 (median of 40..43) less the gateway's total of 31
    assert tail["median_ms"][OUTSIDE] == pytest.approx(10.5)
