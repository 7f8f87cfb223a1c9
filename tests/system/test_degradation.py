"""Graceful degradation against real processes: a dependency stopped, or too slow to wait for.

One real stack (retrieval, ranking, gateway; real Redis under a prefix of its own)
loses ranking, then retrieval. A second, lone gateway talks to a tiny HTTP server of
the test's own (loopback only) that answers slowly, to show the deadline holds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from harness.processes import ServiceProcess, free_port, running_stack, service_env

pytestmark = pytest.mark.slow

SLOW_S = 5.0
SLOW_USER = 1
FAKE_ITEMS = ["11", "22", "33", "44"]  # ids are strings


@pytest.fixture(scope="module")
def stack(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    prefix = f"hrdeg-{uuid.uuid4().hex[:8]}"
    with running_stack(
        small_bundle,
        tmp_path_factory.mktemp("degradation"),
        redis_url=redis_url,
        prefix=prefix,
        # This stack serves from the bundle's HNSW graphs (test_faults: Annoy; the rest:
        # exact search), so every search path runs under real processes.
        HYBRIDREC_FORCE_ANN="true",
        HYBRIDREC_ANN_BACKEND="hnsw",
    ) as procs:
        yield procs


@pytest.fixture(scope="module")
def users(small_bundle: Path) -> pd.DataFrame:
    return pd.read_parquet(small_bundle / "latest" / "users.parquet")


@pytest.fixture(scope="module")
def popular(small_bundle: Path) -> list[dict[str, Any]]:
    return list(json.loads((small_bundle / "latest" / "popular.json").read_text()))


def _candidates_body(user_id: int) -> dict[str, Any]:
    """What the gateway asks retrieval for on GET /v1/users/{id}/recommendations."""
    return {"user_id": user_id, "k": 300, "exclude_item_ids": [], "exclude_seen": True}


def _no_traceback(proc: ServiceProcess) -> None:
    log = proc.log_path.read_text(errors="replace")
    assert "Traceback" not in log, f"{proc.name}:\n{log[-4000:]}"


def test_ranking_down_answers_in_retrieval_order(
    stack: dict[str, ServiceProcess], users: pd.DataFrame
) -> None:
    gw, retrieval = stack["gateway"].url, stack["retrieval"].url
    ready = httpx.get(f"{retrieval}/health/ready", timeout=10).json()
    assert ready["checks"]["search"] == "ok (two_tower: hnsw, content: hnsw)", ready
    uid = str(users.iloc[3].user_id)
    # k=11 here: the gateway's result cache would answer a repeat of the k=10 request
    # below from Redis, without asking ranking (test_cached_answer_outlives_its_dependencies).
    ranked = httpx.get(f"{gw}/v1/users/{uid}/recommendations", params={"k": 11}, timeout=30)
    assert ranked.status_code == 200 and ranked.json()["degraded"] == [], ranked.text
    cands = httpx.post(f"{retrieval}/v1/candidates", json=_candidates_body(uid), timeout=30)
    assert cands.status_code == 200, cands.text
    cols = cands.json()["columns"]
    order = list(zip(cols["item_ids"], cols["scores"], strict=True))[:10]
    assert len(order) == 10

    stack["ranking"].stop()
    r = httpx.get(f"{gw}/v1/users/{uid}/recommendations", params={"k": 10}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] == ["ranking"]
    assert [(it["item_id"], it["score"]) for it in body["items"]] == order
    assert [it["rank"] for it in body["items"]] == list(range(1, 11))
    assert body["model_version"] == cands.json()["model_version"]
    # The ranker's order differs from retrieval's on this user, so the fallback is visible.
    assert [it["item_id"] for it in ranked.json()["items"][:10]] != [i for i, _ in order]

    seed = [int(i) for i in users.iloc[3].history[:3]]
    r = httpx.post(f"{gw}/v1/recommendations", json={"recent_item_ids": seed, "k": 5}, timeout=30)
    assert r.status_code == 200 and r.json()["degraded"] == ["ranking"], r.text
    assert len(r.json()["items"]) == 5 and not {it["item_id"] for it in r.json()["items"]} & set(
        seed
    )
    ready = httpx.get(f"{gw}/health/ready", timeout=10).json()
    assert ready["status"] == "ok" and "degraded" in ready["checks"]["ranking"]


def test_cached_answer_outlives_its_dependencies(
    stack: dict[str, ServiceProcess], users: pd.DataFrame
) -> None:
    """Runs with ranking already stopped; stops retrieval for the next test."""
    gw = stack["gateway"].url
    uid = str(users.iloc[5].user_id)
    first = httpx.get(f"{gw}/v1/users/{uid}/recommendations", params={"k": 7}, timeout=30)
    assert first.status_code == 200 and first.headers["x-hybridrec-cache"] == "miss", first.text
    assert first.json()["degraded"] == ["ranking"]  # degraded answers are not cached
    stack["ranking"].start().wait_ready()
    fresh = httpx.get(f"{gw}/v1/users/{uid}/recommendations", params={"k": 7}, timeout=30)
    assert fresh.headers["x-hybridrec-cache"] == "miss" and fresh.json()["degraded"] == []
    stack["ranking"].stop()
    stack["retrieval"].stop()
    cached = httpx.get(f"{gw}/v1/users/{uid}/recommendations", params={"k": 7}, timeout=30)
    assert cached.status_code == 200 and cached.headers["x-hybridrec-cache"] == "hit"
    assert cached.json()["items"] == fresh.json()["items"] and cached.json()["degraded"] == []


def test_retrieval_down_answers_popular_items(
    stack: dict[str, ServiceProcess], users: pd.DataFrame, popular: list[dict[str, Any]]
) -> None:
    gw = stack["gateway"].url
    uid = str(users.iloc[0].user_id)
    stack["retrieval"].stop()  # already stopped by the test before: a no-op then
    r = httpx.get(f"{gw}/v1/users/{uid}/recommendations", params={"k": 10}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["degraded"] == ["retrieval"]
    assert [it["item_id"] for it in body["items"]] == [str(p["item_id"]) for p in popular[:10]]
    assert [it["rank"] for it in body["items"]] == list(range(1, 11))
    assert all(it["title"] for it in body["items"])

    top = str(popular[0]["item_id"])
    r = httpx.post(
        f"{gw}/v1/recommendations",
        json={"recent_item_ids": [top], "k": 5, "genres": ["Comedy"]},
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["degraded"] == ["retrieval"], r.text
    want = [str(p["item_id"]) for p in popular if "Comedy" in p["genres"] and p["item_id"] != top]
    assert [it["item_id"] for it in r.json()["items"]] == want[:5]

    # An event is still stored durably, marked degraded; lookups say 503, never 500.
    ev = httpx.post(f"{gw}/v1/users/{uid}/events", json={"item_id": top}, timeout=30)
    assert ev.status_code == 202 and "retrieval" in ev.json()["degraded"], ev.text
    item = httpx.get(f"{gw}/v1/items/{top}", timeout=30)
    assert item.status_code == 503, item.text
    assert item.json()["error"]["code"] and "retrieval" in item.json()["error"]["message"]
    ready = httpx.get(f"{gw}/health/ready", timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"]["retrieval"].startswith("down")

    # The event's history update waited in the gateway and reaches retrieval once it is back.
    stack["retrieval"].start().wait_ready()
    ret = stack["retrieval"].url

    def history() -> list[int]:
        c = httpx.post(f"{ret}/v1/candidates", json=_candidates_body(uid), timeout=30)
        assert c.status_code == 200, c.text
        return list(c.json()["history"])

    deadline = time.monotonic() + 20
    while history()[-1:] != [top] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert history()[-1:] == [top], history()
    _no_traceback(stack["gateway"])


# ----------------------------------------------------------------------------- slow dependency
class _SlowServer(ThreadingHTTPServer):
    daemon_threads = True
    stopping: threading.Event
    calls: list[str]


class _SlowHandler(BaseHTTPRequestHandler):
    """Retrieval and ranking in one: /v1/rank and SLOW_USER's candidates take SLOW_S."""

    server: _SlowServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the gateway gave up waiting: expected
            pass

    def do_GET(self) -> None:
        self._answer({"status": "ok", "service": "fake", "checks": {}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        self.server.calls.append(self.path)
        if self.path == "/v1/rank":
            self.server.stopping.wait(SLOW_S)
            self._answer({"items": [], "model_version": "fake"})
            return
        if body.get("user_id") == str(SLOW_USER):
            self.server.stopping.wait(SLOW_S)
        columns = {
            "item_ids": FAKE_ITEMS,
            "scores": [1.0 - j / 10 for j in range(len(FAKE_ITEMS))],
            "sources": ["two_tower"] * len(FAKE_ITEMS),
            "titles": [f"fake {i}" for i in FAKE_ITEMS],
        }
        user = body.get("user_id")
        self._answer({"user_id": user, "columns": columns, "history": [], "model_version": "f1"})


@pytest.fixture(scope="module")
def slow_server() -> Iterator[_SlowServer]:
    server = _SlowServer(("127.0.0.1", 0), _SlowHandler)
    server.stopping = threading.Event()
    server.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def _gateway_to(
    small_bundle: Path, slow_server: _SlowServer, workdir: Path, **extra: str
) -> ServiceProcess:
    fake = f"http://127.0.0.1:{slow_server.server_address[1]}"
    port = free_port()
    env = service_env(
        small_bundle,
        workdir / "state",
        redis_url=None,
        prefix="unused",
        HYBRIDREC_PORT=str(port),
        HYBRIDREC_RETRIEVAL_URL=fake,
        HYBRIDREC_RANKING_URL=fake,
        HYBRIDREC_DEADLINE_S="1.0",
        # Per-call timeouts above the deadline: only the deadline can cut the wait short.
        HYBRIDREC_RETRIEVAL_TIMEOUT_S="5.0",
        HYBRIDREC_RANKING_TIMEOUT_S="5.0",
        **extra,
    )
    return ServiceProcess("gateway", port, env, workdir / "gateway.log").start()


@pytest.fixture(scope="module")
def lone_gateway(
    small_bundle: Path, slow_server: _SlowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    proc = _gateway_to(small_bundle, slow_server, tmp_path_factory.mktemp("slow-dependency"))
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def test_overloaded_gateway_answers_popular_items_at_once(
    small_bundle: Path,
    slow_server: _SlowServer,
    tmp_path: Path,
    popular: list[dict[str, Any]],
) -> None:
    proc = _gateway_to(small_bundle, slow_server, tmp_path, HYBRIDREC_MAX_IN_FLIGHT="1")
    try:
        proc.wait_ready()
        slow_calls = len(slow_server.calls)
        with ThreadPoolExecutor(1) as pool:
            # Holds the only slot for up to the 1 s deadline (its retrieval call is slow).
            first = pool.submit(
                httpx.get, f"{proc.url}/v1/users/{SLOW_USER}/recommendations", timeout=30
            )
            deadline = time.monotonic() + 10
            while len(slow_server.calls) == slow_calls and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(slow_server.calls) > slow_calls, "the first request never reached retrieval"
            shed = httpx.get(f"{proc.url}/v1/users/{SLOW_USER + 1}/recommendations", timeout=30)
            # answered while the first still held the slot: it did not queue behind it
            first_still_running = not first.done()
            assert first.result().json()["degraded"] == ["retrieval"]  # cut at the deadline
        assert shed.status_code == 200, shed.text
        assert shed.json()["degraded"] == ["overload"]
        assert [it["item_id"] for it in shed.json()["items"]] == [
            str(p["item_id"]) for p in popular[:10]
        ]
        assert first_still_running
        metrics = httpx.get(f"{proc.url}/metrics", timeout=10).text
        assert "hybridrec_recommendations_in_flight 0.0" in metrics
        # The slot is free again: the next answer is computed (ranking is slow: cut).
        after = httpx.get(f"{proc.url}/v1/users/{SLOW_USER + 2}/recommendations", timeout=30)
        assert after.json()["degraded"] == ["ranking"]
        _no_traceback(proc)
    finally:
        proc.stop()


def test_slow_retrieval_is_cut_at_the_deadline(
    lone_gateway: ServiceProcess, slow_server: _SlowServer, popular: list[dict[str, Any]]
) -> None:
    start = time.monotonic()
    r = httpx.get(f"{lone_gateway.url}/v1/users/{SLOW_USER}/recommendations", timeout=30)
    elapsed = time.monotonic() - start
    assert r.status_code == 200, r.text
    assert elapsed < 3.0, f"the gateway waited {elapsed:.2f} s for a dependency (hang guard)"
    assert r.json()["degraded"] == ["retrieval"]
    assert [it["item_id"] for it in r.json()["items"]] == [str(p["item_id"]) for p in popular[:10]]
    assert "/v1/candidates" in slow_server.calls


def test_slow_ranking_is_cut_at_the_deadline(
    lone_gateway: ServiceProcess, slow_server: _SlowServer
) -> None:
    start = time.monotonic()
    r = httpx.get(f"{lone_gateway.url}/v1/users/{SLOW_USER + 1}/recommendations", timeout=30)
    elapsed = time.monotonic() - start
    assert r.status_code == 200, r.text
    assert elapsed < 3.0, f"the gateway waited {elapsed:.2f} s for a dependency (hang guard)"
    assert r.json()["degraded"] == ["ranking"]
    assert [it["item_id"] for it in r.json()["items"]] == FAKE_ITEMS
    assert "/v1/rank" in slow_server.calls
    _no_traceback(lone_gateway)
