"""export_events: stream + spool to parquet, canonical dtypes, spool copies once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from harness.processes import free_port
from harness.redis_server import RedisProcess
from shared.contracts.errors import DataError, DependencyUnavailableError
from shared.stores.events import EventLog
from shared.stores.export import COLUMNS, export_events
from shared.stores.redis_conn import RedisGuard

# generous: a busy 2-core machine must not turn a slow answer into "Redis down"
TIMEOUT_S = 2.0


def _ev(
    user: int | str, item: int | str, kind: str, rating: float | None, ts: int
) -> dict[str, Any]:
    return {"user_id": user, "item_id": item, "type": kind, "rating": rating, "timestamp": ts}


def _append(
    guard_url: str | None, state: Path, prefix: str, events: list[dict[str, Any]]
) -> list[str]:
    async def main() -> list[str]:
        guard = RedisGuard(guard_url, timeout_s=TIMEOUT_S) if guard_url else None
        log = EventLog(guard, state, prefix=prefix)
        try:
            return [(await log.append(e))[0] for e in events]
        finally:
            if guard is not None:
                await guard.close()

    return asyncio.run(main())


def _check_dtypes(df: pd.DataFrame) -> None:
    assert list(df.columns) == list(COLUMNS)
    assert pd.api.types.is_string_dtype(df["user_id"])  # ids are strings
    assert pd.api.types.is_string_dtype(df["item_id"])
    assert df["timestamp"].dtype == np.int64
    assert df["rating"].dtype == np.float32
    assert pd.api.types.is_string_dtype(df["event_id"])
    assert pd.api.types.is_string_dtype(df["type"])


def test_export_stream_and_spool_with_dedup(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    # 1. two events in the spool (written while Redis was down)
    spooled = _append(
        None,
        state,
        redis_prefix,
        [
            _ev(1, 10, "rating", 4.5, 1000),
            _ev(1, 11, "view", None, 1001),
        ],
    )
    # 2. the first was copied into the stream but the spool was not emptied (a crash
    #    between the copy and the removal): the same spool_id now lives in both places
    client = redis.Redis.from_url(redis_url)
    client.xadd(
        f"{redis_prefix}:events",
        {
            "user_id": "1",
            "item_id": "10",
            "type": "rating",
            "rating": "4.5",
            "timestamp": "1000",
            "spool_id": spooled[0],
        },
    )
    client.close()
    # 3. events written straight to the stream; a view after a rating (no rating: NaN)
    streamed = _append(
        redis_url,
        state,
        redis_prefix,
        [
            _ev(2, 20, "rating", 2.0, 2000),
            _ev(2, 21, "view", None, 2001),
            _ev(3, 30, "click", None, 2_000_000_000),
        ],
    )

    out = tmp_path / "exports" / "events.parquet"
    n = export_events(out, redis_url=redis_url, state_dir=str(state), prefix=redis_prefix)
    df = pd.read_parquet(out)
    assert n == len(df) == 5  # 6 stored copies, 5 distinct events
    _check_dtypes(df)
    assert not out.with_suffix(".parquet.tmp").exists()
    # stream first (the copy of spooled[0], then the streamed ones), then the spool
    assert df["item_id"].tolist() == ["10", "20", "21", "30", "11"]
    assert df["event_id"].iloc[0] == spooled[0]  # the id its client got, not the copy's
    assert df["event_id"].tolist()[1:4] == streamed
    assert df["event_id"].iloc[4] == spooled[1]
    assert df["user_id"].tolist() == ["1", "2", "2", "3", "1"]
    assert df["type"].tolist() == ["rating", "rating", "view", "click", "view"]
    assert df["timestamp"].tolist() == [1000, 2000, 2001, 2_000_000_000, 1001]
    ratings = df["rating"].to_numpy()
    assert ratings[0] == np.float32(4.5) and ratings[1] == np.float32(2.0)
    # a view right after a rating keeps NaN (not the previous row's rating)
    assert np.isnan(ratings[2]) and np.isnan(ratings[3]) and np.isnan(ratings[4])


def test_export_spool_only_without_redis(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # an event stored before ids were strings (integers) and one with string ids
    ids = _append(None, state, "p", [_ev(5, 7, "rating", 3.5, 10),
                                     _ev("cust-6", "sku:8@a.b_c", "view", None, 11)])
    out = tmp_path / "e.parquet"
    assert export_events(out, redis_url=None, state_dir=str(state)) == 2
    df = pd.read_parquet(out)
    _check_dtypes(df)
    assert df["event_id"].tolist() == ids
    assert df[["user_id", "item_id", "timestamp"]].to_numpy().tolist() == [
        ["5", "7", 10], ["cust-6", "sku:8@a.b_c", 11]]
    assert df["rating"].iloc[0] == np.float32(3.5) and np.isnan(df["rating"].iloc[1])


def test_export_of_nothing_writes_an_empty_typed_table(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    out = tmp_path / "empty.parquet"
    n = export_events(
        out, redis_url=redis_url, state_dir=str(tmp_path / "none"), prefix=redis_prefix
    )
    df = pd.read_parquet(out)
    assert n == 0 and len(df) == 0
    _check_dtypes(df)


def test_export_overwrites_a_previous_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = tmp_path / "e.parquet"
    _append(None, state, "p", [_ev(1, 1, "view", None, 1)])
    assert export_events(out, redis_url=None, state_dir=str(state)) == 1
    _append(None, state, "p", [_ev(1, 2, "view", None, 2)])
    assert export_events(out, redis_url=None, state_dir=str(state)) == 2
    assert pd.read_parquet(out)["item_id"].tolist() == ["1", "2"]


def test_export_with_redis_down_says_so(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(DependencyUnavailableError, match="did not answer") as info:
        export_events(tmp_path / "e.parquet", redis_url=url, state_dir=str(tmp_path))
    assert url in str(info.value)
    assert not (tmp_path / "e.parquet").exists()


def test_export_names_an_event_with_a_bad_timestamp(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids = _append(None, state, "p", [_ev(1, 1, "view", None, 1)])
    bad = _append(None, state, "p", [{"user_id": 1, "item_id": 2, "type": "view"}])
    with pytest.raises(DataError, match="timestamp") as info:
        export_events(tmp_path / "e.parquet", redis_url=None, state_dir=str(state))
    assert bad[0] in str(info.value) and ids[0] not in str(info.value)


def test_export_names_an_event_with_a_bad_id(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _append(None, state, "p", [_ev("u1", "i1", "view", None, 1)])
    bad = _append(None, state, "p", [_ev("u1", "a{b}", "view", None, 2)])
    with pytest.raises(DataError, match="item_id") as info:
        export_events(tmp_path / "e.parquet", redis_url=None, state_dir=str(state))
    assert bad[0] in str(info.value) and "A-Z a-z 0-9 . _ : @ -" in str(info.value)


def test_an_xadd_that_timed_out_but_was_applied_is_exported_once(tmp_path: Path) -> None:
    """A frozen Redis: the XADD times out, the event is spooled, then Redis applies it."""
    server = RedisProcess(tmp_path / "redis").start()
    state = tmp_path / "state"
    try:

        async def main() -> str:
            guard = RedisGuard(server.url, timeout_s=0.3, cooldown_s=0.0)
            log = EventLog(guard, state, prefix="p")
            try:
                assert server.proc is not None
                await guard.run(lambda r: r.ping())  # a pooled connection, already set up
                os.kill(server.proc.pid, signal.SIGSTOP)
                try:
                    eid, spooled = await log.append(_ev(4, 40, "click", None, 4000))
                finally:
                    os.kill(server.proc.pid, signal.SIGCONT)
                assert spooled and eid.startswith("f")
                client = redis.Redis.from_url(server.url, decode_responses=True)
                deadline = time.monotonic() + 10
                while not client.xlen("p:events") and time.monotonic() < deadline:
                    time.sleep(0.05)  # the resumed server runs the XADD it had received
                applied: Any = client.xrange("p:events")
                client.close()
                assert [f["event_key"] for _, f in applied] == [eid]
                assert await log.flush_spool() == 1
                return eid
            finally:
                await guard.close()

        eid = asyncio.run(main())
        client = redis.Redis.from_url(server.url, decode_responses=True)
        rows: Any = client.xrange("p:events")
        client.close()
        # two copies in the stream, both carrying the id the client got
        assert [(f.get("event_key"), f.get("spool_id")) for _, f in rows] == [
            (eid, None),
            (None, eid),
        ]
        out = tmp_path / "e.parquet"
        assert export_events(out, redis_url=server.url, state_dir=str(state), prefix="p") == 1
    finally:
        server.stop()
    df = pd.read_parquet(out)
    assert df["event_id"].tolist() == [eid] and df["item_id"].tolist() == ["40"]
