"""EventLog: Redis stream, fsync'd spool, flushing, torn lines and crash durability."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.redis_server import RedisProcess
from shared.stores.events import EVENT_FIELDS, EventLog, FileEventLog, durable_append
from shared.stores.redis_conn import RedisGuard

# generous: a busy 2-core machine must not turn a slow answer into "Redis down"
TIMEOUT_S = 2.0

STREAM_ID = re.compile(r"^\d+-\d+$")


def _event(i: int, *, rating: float | None = None, kind: str = "view") -> dict[str, Any]:
    return {
        "user_id": 1 + i % 3,
        "item_id": 100 + i,
        "type": kind,
        "rating": rating,
        "timestamp": 1_700_000_000 + i,
    }


def _stream(url: str, prefix: str) -> list[tuple[str, dict[str, str]]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        rows: Any = client.xrange(f"{prefix}:events")
        return [(str(eid), dict(f)) for eid, f in rows]
    finally:
        client.close()


async def _collect(log: EventLog) -> list[dict[str, Any]]:
    return [ev async for ev in log.iter_events()]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def test_append_to_stream_returns_stream_ids(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async def main() -> tuple[list[tuple[str, bool]], list[dict[str, Any]]]:
        guard = RedisGuard(redis_url, timeout_s=TIMEOUT_S)
        log = EventLog(guard, tmp_path / "state", prefix=redis_prefix)
        try:
            acks = [
                await log.append(_event(0, rating=4.5, kind="rating")),
                await log.append(_event(1)),
                await log.append(_event(2, kind="click")),
            ]
            return acks, await _collect(log)
        finally:
            await guard.close()

    acks, events = asyncio.run(main())
    assert [spooled for _, spooled in acks] == [False, False, False]
    ids = [eid for eid, _ in acks]
    assert all(STREAM_ID.match(eid) for eid in ids), ids
    assert len(set(ids)) == 3
    stream = _stream(redis_url, redis_prefix)
    assert [eid for eid, _ in stream] == ids
    keys = [f.pop("event_key") for _, f in stream]  # the id it would have had in the spool
    assert all(k.startswith("f") for k in keys) and len(set(keys)) == 3
    assert stream[0][1] == {
        "user_id": "1",
        "item_id": "100",
        "type": "rating",
        "rating": "4.5",
        "timestamp": "1700000000",
    }
    assert stream[1][1]["rating"] == ""  # None is stored as an empty string
    assert [ev["event_id"] for ev in events] == ids
    assert events[2]["type"] == "click"
    assert not (tmp_path / "state" / "events.jsonl").exists()  # nothing spooled


def test_without_redis_events_go_to_fsynced_jsonl(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> tuple[list[tuple[str, bool]], list[dict[str, Any]]]:
        log = EventLog(None, state)
        acks = [await log.append(_event(i, rating=3.0 if i == 1 else None)) for i in range(3)]
        return acks, await _collect(log)

    acks, events = asyncio.run(main())
    # no Redis configured: the file is the log itself, not a spool
    assert [spooled for _, spooled in acks] == [False, False, False]
    ids = [eid for eid, _ in acks]
    assert all(eid.startswith("f") for eid in ids) and len(set(ids)) == 3
    lines = (state / "events.jsonl").read_text().splitlines()
    assert len(lines) == 3
    rows = [json.loads(line) for line in lines]
    assert [r["event_id"] for r in rows] == ids
    assert rows[1] == {
        "event_id": ids[1],
        "user_id": "2",
        "item_id": "101",
        "type": "view",
        "rating": "3.0",
        "timestamp": "1700000001",
    }
    assert rows[0]["rating"] == ""
    assert events == rows


def test_flush_spool_without_redis_is_a_noop(tmp_path: Path) -> None:
    async def main() -> int:
        log = EventLog(None, tmp_path)
        await log.append(_event(0))
        return await log.flush_spool()

    assert asyncio.run(main()) == 0
    assert len(FileEventLog(tmp_path / "events.jsonl").read_all()) == 1


def test_redis_down_spools_then_flush_moves_events_into_stream(
    private_redis: RedisProcess, tmp_path: Path
) -> None:
    state = tmp_path / "state"

    async def main() -> dict[str, Any]:
        guard = RedisGuard(private_redis.url, timeout_s=TIMEOUT_S, cooldown_s=0.1)
        log = EventLog(guard, state, prefix="hr")
        out: dict[str, Any] = {}
        try:
            out["first"] = await log.append(_event(0))
            private_redis.kill()
            out["down"] = [await asyncio.wait_for(log.append(_event(i)), 5.0) for i in range(1, 4)]
            out["spool_while_down"] = log.spool.read_all()
            out["flush_while_down"] = await log.flush_spool()
            private_redis.start()
            out["flushed"] = await log.flush_spool()
            out["spool_after"] = log.spool.read_all()
            out["flush_again"] = await log.flush_spool()
            out["iterated"] = await _collect(log)
        finally:
            await guard.close()
        return out

    out = asyncio.run(main())
    assert out["first"][1] is False
    assert [spooled for _, spooled in out["down"]] == [True, True, True]
    spool_ids = [eid for eid, _ in out["down"]]
    assert all(eid.startswith("f") for eid in spool_ids)
    assert [e["event_id"] for e in out["spool_while_down"]] == spool_ids
    assert out["flush_while_down"] == 0
    assert out["flushed"] == 3
    assert out["spool_after"] == []
    assert out["flush_again"] == 0
    stream = _stream(private_redis.url, "hr")
    # the private server has no persistence: only the three copies are there
    assert [f["spool_id"] for _, f in stream] == spool_ids
    assert [f["item_id"] for _, f in stream] == ["101", "102", "103"]
    assert all(set(EVENT_FIELDS) <= set(f) for _, f in stream)
    assert [e["spool_id"] for e in out["iterated"]] == spool_ids


def test_flush_in_several_batches(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    spool = FileEventLog(tmp_path / "events.jsonl")
    ids = [spool.append_sync({k: str(v) for k, v in _event(i).items()}) for i in range(7)]

    async def main() -> int:
        guard = RedisGuard(redis_url, timeout_s=TIMEOUT_S)
        try:
            return await EventLog(guard, tmp_path, prefix=redis_prefix).flush_spool(batch=3)
        finally:
            await guard.close()

    assert asyncio.run(main()) == 7
    assert [f["spool_id"] for _, f in _stream(redis_url, redis_prefix)] == ids
    assert spool.read_all() == []


def test_iter_events_yields_stream_then_spool(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async def main() -> tuple[list[str], list[dict[str, Any]]]:
        guard = RedisGuard(redis_url, timeout_s=TIMEOUT_S)
        log = EventLog(guard, tmp_path, prefix=redis_prefix)
        try:
            spooled = log.spool.append_sync(
                {"user_id": "9", "item_id": "1", "type": "view", "rating": "", "timestamp": "5"}
            )
            a, _ = await log.append(_event(0))
            b, _ = await log.append(_event(1))
            return [a, b, spooled], await _collect(log)
        finally:
            await guard.close()

    ids, events = asyncio.run(main())
    assert [e["event_id"] for e in events] == ids
    assert events[2]["user_id"] == "9"


def test_iter_events_pages_through_a_long_stream(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async def main() -> tuple[list[str], list[str]]:
        guard = RedisGuard(redis_url, timeout_s=TIMEOUT_S)
        log = EventLog(guard, tmp_path, prefix=redis_prefix)
        try:
            ids = [(await log.append(_event(i)))[0] for i in range(25)]
            return ids, [ev["event_id"] async for ev in log.iter_events(batch=4)]
        finally:
            await guard.close()

    ids, seen = asyncio.run(main())
    assert seen == ids  # every event once, in order, across 7 pages


def test_torn_last_line_is_ignored_and_the_next_append_survives(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    async def main() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        log = EventLog(None, tmp_path)
        await log.append(_event(0))
        await log.append(_event(1))
        with path.open("ab") as fh:  # a crash in the middle of a write
            fh.write(b'{"event_id":"f123-torn","user_id":"1","item')
        before = await _collect(log)
        eid, _ = await log.append(_event(2))
        return before, await _collect(log), eid

    before, after, eid = asyncio.run(main())
    assert [e["item_id"] for e in before] == ["100", "101"]
    # the acknowledged event written after the torn fragment must not be swallowed by it
    assert [e["item_id"] for e in after] == ["100", "101", "102"]
    assert after[-1]["event_id"] == eid
    assert "f123-torn" not in {e["event_id"] for e in after}


def test_corrupt_middle_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    spool = FileEventLog(path)
    spool.append_sync({"item_id": "1"})
    durable_append(path, "not json at all\n")
    durable_append(path, "[1, 2]\n")  # valid JSON but not an event
    spool.append_sync({"item_id": "2"})
    assert [e["item_id"] for e in spool.read_all()] == ["1", "2"]


def test_remove_head_keeps_events_appended_during_a_flush(tmp_path: Path) -> None:
    spool = FileEventLog(tmp_path / "events.jsonl")
    first = [spool.append_sync({"item_id": str(i)}) for i in range(3)]
    late = spool.append_sync({"item_id": "late"})
    assert spool.remove_head(first[1:]) is False  # not the head: nothing changes
    assert len(spool.read_all()) == 4
    assert spool.remove_head(first) is True
    assert [e["event_id"] for e in spool.read_all()] == [late]
    assert not (tmp_path / "events.jsonl.tmp").exists()
    assert spool.remove_head([late]) is True
    assert spool.read_all() == []
    assert spool.path.read_bytes() == b""


def test_spool_ids_are_unique_across_log_instances(tmp_path: Path) -> None:
    a = FileEventLog(tmp_path / "events.jsonl")
    b = FileEventLog(tmp_path / "events.jsonl")  # e.g. after a restart
    ids = [log.append_sync({"item_id": "1"}) for log in (a, b, a, b)]
    assert len(set(ids)) == 4
    assert [e["event_id"] for e in a.read_all()] == ids


def test_acknowledged_events_survive_redis_sigkill(tmp_path: Path) -> None:
    """appendonly + appendfsync always: every XADD that answered is on disk."""
    server = RedisProcess(tmp_path / "aof", appendonly=True).start()
    n = 200
    try:

        async def main() -> list[str]:
            guard = RedisGuard(server.url, timeout_s=TIMEOUT_S)
            log = EventLog(guard, tmp_path / "state", prefix="dur")
            try:
                acks = [await log.append(_event(i)) for i in range(n)]
            finally:
                await guard.close()
            assert not any(spooled for _, spooled in acks)
            return [eid for eid, _ in acks]

        acked = asyncio.run(main())
        server.kill()  # SIGKILL right after the last acknowledgement
        server.start()  # same port and folder: replays the append-only file
        stream = _stream(server.url, "dur")
    finally:
        server.stop()
    assert [eid for eid, _ in stream] == acked
    assert [f["item_id"] for _, f in stream] == [str(100 + i) for i in range(n)]
    assert not (tmp_path / "state" / "events.jsonl").exists()
