"""``hybridrec serve combined`` with its Redis stopped and started again: it degrades as the
split does (recommendations keep coming, events are spooled to disk and reach the stream
once Redis is back), and nothing shows a traceback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis

from harness.processes import ServiceProcess, start_stack
from harness.redis_server import RedisProcess
from tests.support.traffic import wait_redis_check, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outage(
    small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RedisProcess, ServiceProcess, str]]:
    workdir = tmp_path_factory.mktemp("combined-faults")
    server = RedisProcess(workdir / "redis", appendonly=True).start()
    prefix = f"hrcf-{uuid.uuid4().hex[:8]}"
    try:
        procs = start_stack(
            small_bundle, workdir / "stack", redis_url=server.url, prefix=prefix,
            combined=True, serve=True, HYBRIDREC_REDIS_TIMEOUT_S="0.25",
        )  # fmt: skip
        try:
            yield server, procs["combined"], prefix
        finally:
            for p in procs.values():
                p.stop()
    finally:
        server.stop()


def test_redis_down_degrades_and_recovers(
    outage: tuple[RedisProcess, ServiceProcess, str], small_bundle: Path
) -> None:
    server, proc, prefix = outage
    users = pd.read_parquet(small_bundle / "latest" / "users.parquet")
    user, other = str(users.user_id.iloc[0]), str(users.user_id.iloc[1])
    recs = f"{proc.url}/v1/users/{user}/recommendations"
    first = httpx.get(recs, params={"k": 10}, timeout=30).json()
    assert first["degraded"] == [] and len(first["items"]) == 10, first
    item = first["items"][0]["item_id"]

    server.stop()
    wait_redis_check([proc.url], degraded=True)
    during = httpx.get(recs, params={"k": 10}, headers={"Cache-Control": "no-cache"}, timeout=30)
    assert during.status_code == 200, during.text
    assert "cache" in during.json()["degraded"] and len(during.json()["items"]) == 10, during.json()
    ev = httpx.post(f"{proc.url}/v1/users/{other}/events",
                    json={"item_id": item, "type": "click"}, timeout=30)  # fmt: skip
    assert ev.status_code == 202, ev.text
    spooled = ev.json()
    assert spooled["event_id"].startswith("f") and "cache" in spooled["degraded"], spooled

    server.start()  # same port and folder
    wait_redis_check([proc.url], degraded=False)
    wait_until(
        lambda: not httpx.get(recs, params={"k": 10}, headers={"Cache-Control": "no-cache"},
                              timeout=30).json()["degraded"],
        30, "an undegraded answer once Redis is back",
    )  # fmt: skip

    def in_stream() -> bool:
        with redis.Redis.from_url(server.url, decode_responses=True) as r:
            rows = r.xrange(f"{prefix}:events")
        return any(f.get("user_id") == other and f.get("item_id") == item for _, f in rows)

    wait_until(in_stream, 20, "the spooled event in the Redis stream")
    log = proc.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
