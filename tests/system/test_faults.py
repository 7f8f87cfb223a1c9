"""Faults against real processes: Redis stopped under traffic; kill -9 of Redis and the gateway.

One private ``redis-server`` (its own port and folder, ``appendonly yes``,
``appendfsync always``) and one real stack (retrieval, ranking, gateway; event spool
in a state folder on disk) pointed at it serve the whole module. A client thread keeps
sending gateway requests while the test stops Redis, kills processes with SIGKILL and
restarts them on the same port, folder and state dir.

What the code guarantees, and what the tests assert: an event answered 202 is stored
durably (``XADD`` into the append-only stream, or a fsync'd line in the spool while
Redis is down) and reaches the stream **at least once** once Redis is back. Every
copy of an event carries the id the client got for it when that was a spool id
(``spool_id`` on a copy from the spool, ``event_key`` on an ``XADD`` that timed out but
was applied anyway), so duplicates (a crash between the copy into the stream and the
spool's truncation) are identified by that id, and ``hybridrec events export`` writes
each acknowledged event exactly once, under the id the client got.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import redis

from harness.processes import ServiceProcess, start_stack
from harness.redis_server import RedisProcess
from shared.stores.events import FileEventLog
from shared.stores.export import COLUMNS
from tests.support.traffic import Call, ClientThread, wait_redis_check, wait_until

pytestmark = pytest.mark.slow

DEADLINE_S = 1.5  # HYBRIDREC_DEADLINE_S of the gateway under test
RETRIEVAL_TIMEOUT_S = 0.8
REDIS_TIMEOUT_S = 0.25
# Time outside the gateway's own clock: HTTP on loopback, JSON, a busy 2-core machine.
SLACK_S = 1.0
# An event: item check + XADD or fsync'd spool line + history update (no deadline applies).
EVENT_BOUND_S = 2 * RETRIEVAL_TIMEOUT_S + REDIS_TIMEOUT_S + SLACK_S
TS_TRAFFIC = 1_700_000_000  # event timestamps of the traffic test
TS_STREAM = 1_900_000_000  # event timestamps of the kill -9 test (one per event)
STREAM_ID = re.compile(r"^\d+-\d+$")


@dataclass
class Faults:
    redis: RedisProcess
    procs: dict[str, ServiceProcess]
    prefix: str
    state_dir: Path
    users: list[int]
    items: list[int]

    @property
    def gateway(self) -> ServiceProcess:
        return self.procs["gateway"]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True)

    def stream(self) -> list[tuple[str, dict[str, str]]]:
        with self.client() as r:
            rows: Any = r.xrange(f"{self.prefix}:events")
        return [(str(eid), dict(f)) for eid, f in rows]

    def spool(self) -> list[dict[str, Any]]:
        return FileEventLog(self.state_dir / "events.jsonl").read_all()


@pytest.fixture(scope="module")
def faults(small_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    workdir = tmp_path_factory.mktemp("faults")
    server = RedisProcess(workdir / "redis", appendonly=True).start()
    prefix = f"hrfault-{uuid.uuid4().hex[:8]}"
    try:
        procs = start_stack(
            small_bundle,
            workdir / "stack",
            redis_url=server.url,
            prefix=prefix,
            HYBRIDREC_DEADLINE_S=str(DEADLINE_S),
            HYBRIDREC_RETRIEVAL_TIMEOUT_S=str(RETRIEVAL_TIMEOUT_S),
            HYBRIDREC_REDIS_TIMEOUT_S=str(REDIS_TIMEOUT_S),
            # This stack serves from the bundle's Annoy indexes (the small catalogue would
            # otherwise use exact search), so that path runs under real processes too.
            HYBRIDREC_FORCE_ANN="true",
            HYBRIDREC_ANN_BACKEND="annoy",
        )
        users = pd.read_parquet(small_bundle / "latest" / "users.parquet")
        popular = json.loads((small_bundle / "latest" / "popular.json").read_text())
        try:
            yield Faults(
                server,
                procs,
                prefix,
                workdir / "stack" / "state",
                [str(u) for u in users.user_id[:20]],
                [str(p["item_id"]) for p in popular[:60]],
            )
        finally:
            for p in procs.values():
                p.stop()
    finally:
        server.stop()


def _no_traceback(procs: list[ServiceProcess]) -> None:
    for proc in procs:
        log = proc.log_path.read_text(errors="replace")
        assert "Traceback" not in log, f"{proc.name}:\n{log[-4000:]}"


def _acked(calls: list[Call], after: float = 0.0, before: float = float("inf")) -> list[Call]:
    return [
        c
        for c in calls
        if c.kind == "event" and c.status == 202 and after <= c.start and c.end <= before
    ]


# ------------------------------------------------------------------ Redis stopped under traffic
def test_redis_stopped_under_traffic_keeps_answering_then_uses_the_cache_again(
    faults: Faults,
) -> None:
    gw, ret = faults.gateway, faults.procs["retrieval"]
    users, items = faults.users, faults.items

    def next_request(i: int) -> tuple[str, str, str, dict[str, Any] | None]:
        user = users[i % len(users)]
        if i % 3 == 0:
            return "user", "GET", f"/v1/users/{user}/recommendations?k=10", None
        if i % 3 == 1:
            recent = [items[(i + j) % len(items)] for j in range(3)]
            return "anon", "POST", "/v1/recommendations", {"recent_item_ids": recent, "k": 10}
        body = {"item_id": items[i % len(items)], "type": "click", "timestamp": TS_TRAFFIC + i}
        return "event", "POST", f"/v1/users/{user}/events", body

    ready = httpx.get(f"{ret.url}/health/ready", timeout=10).json()
    assert ready["checks"]["search"] == "ok (two_tower: annoy, content: annoy)", ready
    traffic = ClientThread(gw.url, next_request)
    traffic.start()
    outages: list[tuple[str, float, float]] = []
    try:
        traffic.wait_for(lambda cs: len(cs) >= 9, 60, "traffic before the outage")
        for how in ("SIGTERM", "SIGKILL"):
            faults.redis.stop() if how == "SIGTERM" else faults.redis.kill()
            down = time.monotonic()
            wait_redis_check([gw.url, ret.url], degraded=True)
            # Retrieval cannot store a history update: it says so (503), never drops it silently.
            h = httpx.post(
                f"{ret.url}/v1/users/{users[0]}/history", json={"item_ids": items[:1]}, timeout=10
            )
            assert h.status_code == 503 and "Redis" in h.json()["error"]["message"], h.text
            traffic.wait_for(
                lambda cs, t=down: (
                    len(_acked(cs, after=t)) >= 3
                    and sum(c.kind == "user" and c.start >= t for c in cs) >= 3
                ),
                60,
                f"traffic while Redis is down ({how})",
            )
            up = time.monotonic()
            faults.redis.start()  # same port and folder
            outages.append((how, down, up))
            wait_redis_check([gw.url, ret.url], degraded=False)
        n = len(traffic.snapshot())
        traffic.wait_for(lambda cs: len(cs) >= n + 6, 60, "traffic after the outages")
    finally:
        calls = traffic.finish()
    # Every event acknowledged from the spool (during the outages, or in the cooldown
    # right after one) reaches the stream once the flusher has run.
    spooled = [c.body["event_id"] for c in _acked(calls) if c.body and c.body["event_id"][0] == "f"]
    wait_until(lambda: not faults.spool(), 15, "the spool to be flushed into the stream")

    # 1. The gateway never failed: 200 for every recommendation, 202 for every event.
    assert calls and all(c.status == (202 if c.kind == "event" else 200) for c in calls), [
        (c.kind, c.status, c.body, c.error) for c in calls if c.status not in (200, 202)
    ]
    # 2. While Redis was down: events spooled (f-ids, degraded cache), known users bypassed
    #    the cache (or were cut to the popular fallback by the deadline).
    for how, down, up in outages:
        during = [c for c in calls if down <= c.start and c.end <= up]
        for c in during:
            assert c.body is not None
            if c.kind == "event":
                assert c.body["event_id"].startswith("f") and "cache" in c.body["degraded"], c
            if c.kind == "user":
                assert {"cache", "retrieval"} & set(c.body["degraded"]), (how, c.body)
    # 3. Nothing waited longer than the configured bounds.
    recs = [c for c in calls if c.kind != "event"]
    assert max(c.elapsed for c in recs) <= DEADLINE_S + SLACK_S, sorted(c.elapsed for c in recs)
    events = [c for c in calls if c.kind == "event"]
    assert max(c.elapsed for c in events) <= EVENT_BOUND_S, sorted(c.elapsed for c in events)
    # 4. Every spooled event was moved into the stream (at least once: a flush cut by the
    #    second outage may have copied a few twice, under the same spool_id).
    copies = Counter(f.get("spool_id") for _, f in faults.stream())
    assert len(spooled) >= 6 and all(copies[s] >= 1 for s in spooled), (spooled, copies)
    #    ... and their clicks, which could not reach the history while Redis was down, were
    #    replayed into the users' recent history after the flush.
    replayed = [
        (c.body["user_id"], c.body["item_id"])
        for c in _acked(calls)
        if c.body and c.body["event_id"][0] == "f"
    ]
    with faults.client() as r:

        def in_history() -> bool:
            return all(
                str(item) in r.lrange(f"{faults.prefix}:hist:{user}", 0, -1)
                for user, item in replayed
            )

        wait_until(in_history, 15, "spooled events replayed into the history lists")
    # 5. The cache is used again: a known user's vector is written, then read back.
    #    (Polled: on a busy machine one call may still be cut by a timeout.)
    user = users[1]
    version = next(
        c.body["model_version"] for c in recs if c.body and "retrieval" not in c.body["degraded"]
    )
    vkey, hkey = (f"{faults.prefix}:uvec:{version}:u{user}", f"{faults.prefix}:hist:{user}")
    body = {"user_id": user, "k": 50, "exclude_item_ids": [], "exclude_seen": True}
    with faults.client() as r:
        r.delete(vkey)
        statuses: list[str] = []

        def hit() -> bool:
            cands = httpx.post(f"{ret.url}/v1/candidates", json=body, timeout=30)
            assert cands.status_code == 200, cands.text
            statuses.append(cands.json()["cache"])
            return statuses[-1] == "hit"

        wait_until(hit, 20, "a cache hit")
        assert statuses[0] == "miss" and r.ttl(vkey) > 0, statuses  # written, then read back
        wait_until(
            lambda: not httpx.get(f"{gw.url}/v1/users/{user}/recommendations").json()["degraded"],
            20,
            "a gateway answer that is not degraded",
        )
        # ... and a new event updates the history list (and drops the cached vector).
        fresh = [i for i in items if str(i) not in r.lrange(hkey, 0, -1)]

        def pushed() -> bool:
            item = fresh.pop()
            ev = httpx.post(f"{gw.url}/v1/users/{user}/events", json={"item_id": item}, timeout=30)
            assert ev.status_code == 202 and STREAM_ID.match(ev.json()["event_id"]), ev.text
            return bool(ev.json()["degraded"] == [] and r.lrange(hkey, -1, -1) == [str(item)])

        wait_until(pushed, 20, "an event in the history list")
        assert not r.exists(vkey)
    _no_traceback(list(faults.procs.values()))
    print(
        f"\ntraffic: {len(calls)} calls ({len(events)} events, {len(spooled)} spooled), "
        f"max recommendation {max(c.elapsed for c in recs):.3f}s, "
        f"max event {max(c.elapsed for c in events):.3f}s, "
        f"{sum(copies[s] - 1 for s in spooled)} duplicate copies, "
        + ", ".join(f"{how} outage {up - down:.1f}s" for how, down, up in outages)
    )


# ------------------------------------------------------------ kill -9 of Redis and the gateway
def _restart_gateway(faults: Faults) -> ServiceProcess:
    """A new gateway process on the same port, environment, state dir and log."""
    old = faults.gateway
    new = ServiceProcess(old.name, old.port, old.env, old.log_path).start()
    faults.procs["gateway"] = new
    new.wait_ready(60)
    return new


def test_acknowledged_events_survive_kill9_of_redis_and_gateway(
    faults: Faults, tmp_path: Path
) -> None:
    users, items = faults.users, faults.items
    sent: dict[int, dict[str, Any]] = {}  # timestamp -> the event's content

    def next_request(i: int) -> tuple[str, str, str, dict[str, Any] | None]:
        user, item = users[i % len(users)], items[(7 * i) % len(items)]
        sent[TS_STREAM + i] = {"user_id": user, "item_id": item}
        body = {"item_id": item, "type": "view", "timestamp": TS_STREAM + i}
        return "event", "POST", f"/v1/users/{user}/events", body

    poster = ClientThread(faults.gateway.url, next_request, timeout_s=10)
    poster.start()
    moments: dict[str, float] = {}
    try:
        poster.wait_for(lambda cs: len(_acked(cs)) >= 20, 60, "events stored in the stream")
        faults.redis.kill()  # kill -9 Redis mid-stream
        moments["redis_killed"] = t = time.monotonic()
        poster.wait_for(lambda cs: len(_acked(cs, after=t)) >= 10, 60, "events spooled")
        faults.gateway.stop(signal.SIGKILL)  # kill -9 the gateway while it spools
        moments["gateway_killed"] = t = time.monotonic()
        poster.wait_for(
            lambda cs: sum(c.status == 0 and c.start >= t for c in cs) >= 3, 30, "refused requests"
        )
        _restart_gateway(faults)  # Redis still down: it spools into the same file
        moments["gateway_restarted"] = t = time.monotonic()
        poster.wait_for(lambda cs: len(_acked(cs, after=t)) >= 10, 60, "events spooled again")
        faults.redis.start()  # same port and append-only folder
        moments["redis_restarted"] = t = time.monotonic()
        poster.wait_for(
            lambda cs: (
                sum(
                    STREAM_ID.match(c.body["event_id"]) is not None
                    for c in _acked(cs, after=t)
                    if c.body
                )
                >= 15
            ),
            60,
            "events stored in the stream again",
        )
    finally:
        calls = poster.finish()
    wait_until(lambda: not faults.spool(), 20, "the spool to be flushed into the stream")

    acked = {c.sent["timestamp"]: c.body["event_id"] for c in _acked(calls) if c.sent and c.body}
    # Between the Redis kill and its restart every acknowledgement came from the spool.
    down = _acked(calls, after=moments["redis_killed"], before=moments["redis_restarted"])
    assert down and all(c.body and c.body["event_id"].startswith("f") for c in down)
    # 1. Every stored event is one the client sent, with its content.
    stream = faults.stream()
    ours = [(eid, f) for eid, f in stream if int(f["timestamp"]) >= TS_STREAM]
    for _, f in ours:
        want = sent[int(f["timestamp"])]
        assert (str(f["user_id"]), str(f["item_id"]), f["type"]) == (
            want["user_id"],
            want["item_id"],
            "view",
        ), f
    # 2. Every acknowledged event is there at least once: by its stream id, or by the spool
    #    id it was acknowledged with; copies of one event all carry that same spool_id.
    by_id = {eid: f for eid, f in ours}
    by_spool = Counter(f.get("spool_id", "") for _, f in ours)
    for ts, eid in acked.items():
        if STREAM_ID.match(eid):
            assert int(by_id[eid]["timestamp"]) == ts
        else:
            assert eid.startswith("f") and by_spool[eid] >= 1, (ts, eid)
    per_ts = Counter(int(f["timestamp"]) for _, f in ours)
    for ts, n in per_ts.items():
        if n > 1:  # a duplicate must be identifiable: the same spool_id on every copy
            ids = {
                f.get("spool_id") or f["event_key"] for _, f in ours if int(f["timestamp"]) == ts
            }
            assert len(ids) == 1 and ids != {""}, (ts, ids)
    # 3. `hybridrec events export` (the real CLI) writes each acknowledged event once.
    out = tmp_path / "export" / "events.parquet"
    env = {**os.environ, "HYBRIDREC_REDIS_PREFIX": faults.prefix}
    cli = Path(sys.executable).with_name("hybridrec")
    run = subprocess.run(
        [
            str(cli),
            "events",
            "export",
            "--out",
            str(out),
            "--redis-url",
            faults.redis.url,
            "--state-dir",
            str(faults.state_dir),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    df = pd.read_parquet(out)
    assert list(df.columns) == list(COLUMNS)
    assert all(pd.api.types.is_string_dtype(df[c]) for c in ("user_id", "item_id"))  # ids: text
    assert [str(df[c].dtype) for c in ("timestamp", "rating")] == ["int64", "float32"]
    assert f"{len(df)} events written" in run.stdout
    mine = df[df.timestamp >= TS_STREAM]
    counts = Counter(mine.timestamp.tolist())
    assert all(counts[ts] == 1 for ts in acked), [ts for ts in acked if counts[ts] != 1]
    assert set(counts) <= set(sent) and all(n == 1 for n in counts.values())
    row = mine.set_index("timestamp")
    for ts, eid in acked.items():
        assert (row.at[ts, "user_id"], row.at[ts, "item_id"], row.at[ts, "type"]) == (
            sent[ts]["user_id"],
            sent[ts]["item_id"],
            "view",
        )
        assert row.at[ts, "event_id"] == eid  # the id the client was given
        assert np.isnan(row.at[ts, "rating"])
    _no_traceback([faults.procs["retrieval"], faults.procs["ranking"]])
    print(
        f"\nkill -9: {len(calls)} requests, {len(acked)} acknowledged "
        f"({len(down)} spooled), {sum(c.status == 0 for c in calls)} unanswered, "
        f"{len(ours)} stored copies, {len(mine)} exported, "
        f"{sum(n - 1 for n in per_ts.values())} duplicates by spool_id"
    )
