"""The stores on a real three-master Redis Cluster (``redis+cluster://``), and the URL form.

The cluster is started by the ``redis_cluster`` fixture (private ports, torn down
after). Keys used together must hash to one slot: checked on the keys the stores
build and on where the cluster actually put them. The last test kills a master and
starts it again, so it runs last in this module.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from shared.contracts.errors import ConfigError
from shared.stores.events import EventLog, FileEventLog
from shared.stores.export import export_events
from shared.stores.fresh_items import FreshItemStore
from shared.stores.redis_conn import RedisGuard, RedisUnavailable, cluster_node_url, slot_tag
from shared.stores.user_state import UserStateStore
from tests.shared.stores.redis_cluster import LocalCluster

# generous: a busy 2-core machine must not turn a slow answer into "Redis down"
TIMEOUT_S = 2.0
HANG_GUARD_S = 15.0  # only proves a call returns instead of hanging; not a latency check


def _prefix() -> str:
    return f"hrc-{uuid.uuid4().hex[:8]}"


def _event(i: int) -> dict[str, Any]:
    return {
        "user_id": 1 + i % 5,
        "item_id": 100 + i,
        "type": "rating" if i % 2 else "view",
        "rating": 4.0 if i % 2 else None,
        "timestamp": 1_700_000_000 + i,
    }


# ---------------------------------------------------------------- URL form, no server


@pytest.mark.parametrize(
    ("url", "plain"),
    [
        ("redis+cluster://10.0.0.5:7000", "redis://10.0.0.5:7000"),
        ("redis+cluster://10.0.0.5:7000/0", "redis://10.0.0.5:7000"),
        (
            "rediss+cluster://u:p@h:7000/?ssl_cert_reqs=none",
            "rediss://u:p@h:7000?ssl_cert_reqs=none",
        ),
        ("redis://127.0.0.1:6379/0", None),
        ("rediss://h:6380/2", None),
    ],
)
def test_cluster_url_form(url: str, plain: str | None) -> None:
    assert cluster_node_url(url) == plain


def test_cluster_url_with_a_database_is_refused() -> None:
    with pytest.raises(ConfigError, match="only database 0"):
        cluster_node_url("redis+cluster://h:7000/3")


def test_slot_tag_only_in_cluster_mode() -> None:
    assert slot_tag("u42", 42, cluster=True) == "{u42}"
    assert slot_tag("u42", 42, cluster=False) == "42"


def test_single_node_keys_keep_their_names(redis_url: str) -> None:
    async def main() -> tuple[bool, str, str]:
        guard = RedisGuard(redis_url, timeout_s=TIMEOUT_S)
        try:
            store = UserStateStore(guard, prefix="p")
            return guard.cluster, store._hkey(42), store._vkey("v1", "u42")
        finally:
            await guard.close()

    assert asyncio.run(main()) == (False, "p:hist:42", "p:uvec:v1:u42")


# ---------------------------------------------------------------- the real cluster


def test_cluster_has_three_masters_and_guard_uses_it(redis_cluster: LocalCluster) -> None:
    client = redis_cluster.client()
    try:
        masters = [n for n in client.get_nodes() if n.server_type == "primary"]
        assert len(masters) == 3
        assert int(client.cluster_info()["cluster_slots_assigned"]) == 16384
    finally:
        client.close()

    async def main() -> tuple[bool, bool]:
        guard = RedisGuard(redis_cluster.url, timeout_s=TIMEOUT_S)
        try:
            return guard.cluster, await guard.ping()
        finally:
            await guard.close()

    assert asyncio.run(main()) == (True, True)


def _node_of(client: RedisCluster, k: str) -> str:
    node = client.get_node_from_key(k)
    assert node is not None
    return f"{node.host}:{node.port}"


def test_user_state_keys_share_a_slot_and_round_trip(redis_cluster: LocalCluster) -> None:
    prefix, version = _prefix(), "2024-01-01T00-00-00"
    users = [f"cust:{i}@x" for i in range(1, 41)]  # ':' and '@' of the id alphabet
    vec = np.linspace(-1, 1, 8, dtype=np.float32)

    async def main() -> tuple[list[Any], list[tuple[str, str, str]]]:
        guard = RedisGuard(redis_cluster.url, timeout_s=TIMEOUT_S)
        store = UserStateStore(guard, prefix=prefix, max_history=3)
        try:
            out, keys, hidden_keys = [], [], []
            for u in users:
                n = int(u[5:-2])
                assert await store.push_recent(u, [str(n), str(n + 1)]) == "hit"
                assert await store.push_recent(u, [str(n + 2), str(n + 3)]) == "hit"  # trimmed
                assert await store.push_recent(u, [str(n + 9)], hidden=True) == "hit"
                assert await store.set_vector(version, f"u{u}", vec * n) == "miss"
                out.append(await store.recent_and_vector(u, version, f"u{u}"))
                keys.append((store._hkey(u), store._vkey(version, f"u{u}"), store._skey(u)))
                hidden_keys.append(store._xkey(u))
            await store.invalidate(version, users[0])
            out.append(await store.recent_and_vector(users[0], version, f"u{users[0]}"))
            return out, keys, hidden_keys
        finally:
            await guard.close()

    out, keys, hidden_keys = asyncio.run(main())
    for u, (recent, status, got, vstatus, seen, hidden) in zip(users, out, strict=False):
        n = int(u[5:-2])
        assert (recent, status, vstatus) == ([str(n + 1), str(n + 2), str(n + 3)], "hit", "hit")
        assert seen == {*(str(n + i) for i in range(4)), str(n + 9)}  # not trimmed
        assert hidden == {str(n + 9)}  # read in the same round trip, from the same slot
        np.testing.assert_array_equal(got, vec * n)
    assert out[-1][2] is None and out[-1][3] == "miss"  # invalidated
    client = redis_cluster.client()
    try:
        for (hk, _, _), xk in zip(keys, hidden_keys, strict=True):
            assert key_slot(xk.encode()) == key_slot(hk.encode()) and client.exists(xk) == 1
            client.delete(xk)
        for hk, vk, sk in keys:
            assert hk.endswith("}") and vk.endswith("}") and sk.endswith("}"), (hk, vk, sk)
            assert key_slot(hk.encode()) == key_slot(vk.encode()) == key_slot(sk.encode())
            assert client.exists(hk) == 1 and client.exists(sk) == 1
            assert _node_of(client, hk) == _node_of(client, vk) == _node_of(client, sk)
        # users spread over the cluster: the tag is per user, not one hot slot
        assert len({_node_of(client, hk) for hk, _, _ in keys}) == 3
        for hk, vk, sk in keys:
            client.delete(hk, vk, sk)
    finally:
        client.close()


def test_event_stream_append_read_spool_drain_and_export(
    redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    prefix, state = _prefix(), tmp_path / "state"
    # Events a service spooled while Redis was unreachable, waiting in the spool.
    spool = FileEventLog(state / "events.jsonl")
    spooled_ids = [spool.append_sync({k: str(v) for k, v in _event(i).items()}) for i in (90, 91)]

    async def main() -> tuple[list[tuple[str, bool]], int, list[dict[str, Any]]]:
        guard = RedisGuard(redis_cluster.url, timeout_s=TIMEOUT_S)
        log = EventLog(guard, state, prefix=prefix)
        try:
            acks = [await log.append(_event(i)) for i in range(20)]
            moved = await log.flush_spool(batch=1)
            return acks, moved, [ev async for ev in log.iter_events(batch=7)]
        finally:
            await guard.close()

    acks, moved, events = asyncio.run(main())
    assert [spooled for _, spooled in acks] == [False] * 20
    assert moved == 2 and spool.read_all() == []
    assert [ev["event_id"] for ev in events[:20]] == [eid for eid, _ in acks]
    assert [ev["item_id"] for ev in events] == [str(100 + i) for i in (*range(20), 90, 91)]
    assert [ev.get("spool_id") for ev in events[20:]] == spooled_ids
    out = tmp_path / "events.parquet"
    assert (
        export_events(out, redis_url=redis_cluster.url, state_dir=str(state), prefix=prefix) == 22
    )
    df = pd.read_parquet(out)
    assert list(df["event_id"].iloc[20:]) == spooled_ids  # the ids their clients got
    assert df["rating"].isna().sum() == 11
    client = redis_cluster.client()
    try:
        assert client.xlen(f"{prefix}:events") == 22
        client.delete(f"{prefix}:events")
    finally:
        client.close()


def test_fresh_items_get_unique_ids_under_concurrency(
    redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    prefix = _prefix()

    async def main() -> tuple[list[int], list[int], dict[str, Any] | None]:
        guards = [RedisGuard(redis_cluster.url, timeout_s=TIMEOUT_S) for _ in range(3)]
        stores = [FreshItemStore(g, tmp_path, prefix=prefix) for g in guards]
        try:
            added = await asyncio.gather(
                *(stores[i % 3].add({"title": f"t{i}"}, 1000, lambda _: False) for i in range(12))
            )
            listed = await stores[0].all()
            return (
                [r["item_id"] for r in added],
                [r["item_id"] for r in listed],
                await stores[1].get("1005"),
            )
        finally:
            for g in guards:
                await g.close()

    added, listed, one = asyncio.run(main())
    assert sorted(added) == [str(i) for i in range(1000, 1012)]
    assert sorted(listed) == sorted(added)
    assert one is not None and one["item_id"] == "1005"
    client = redis_cluster.client()
    try:
        client.delete(f"{prefix}:fresh:items")
        client.delete(f"{prefix}:fresh:next_id")
    finally:
        client.close()


def test_a_dead_master_fails_fast_spools_events_and_recovers(
    redis_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Kill the master of the stream's slot: appends spool, reads bypass, nothing hangs;
    after it restarts the spool drains into the stream and the store answers again."""
    prefix, state = _prefix(), tmp_path / "state"
    stream_key = f"{prefix}:events"
    client = redis_cluster.client()
    try:
        owner = _node_of(client, stream_key)
        # a user whose history lives on the same master
        user = str(next(u for u in range(1, 1000) if _node_of(client, f"x:{{u{u}}}") == owner))
    finally:
        client.close()
    victim = next(n for n in redis_cluster.nodes if f"127.0.0.1:{n.port}" == owner)

    async def down_phase() -> dict[str, Any]:
        guard = RedisGuard(redis_cluster.url, timeout_s=TIMEOUT_S, cooldown_s=0.2)
        log = EventLog(guard, state, prefix=prefix)
        store = UserStateStore(guard, prefix=prefix)
        try:
            before = await log.append(_event(0))
            victim.kill()
            t0 = time.monotonic()
            acks = [
                await asyncio.wait_for(log.append(_event(i)), HANG_GUARD_S) for i in range(1, 4)
            ]
            recent = await asyncio.wait_for(store.recent(user), HANG_GUARD_S)
            with pytest.raises(RedisUnavailable):
                await asyncio.wait_for(guard.run(lambda r: r.xlen(stream_key)), HANG_GUARD_S)
            return {"before": before, "acks": acks, "recent": recent, "s": time.monotonic() - t0}
        finally:
            await guard.close()

    down = asyncio.run(down_phase())
    assert down["before"][1] is False
    assert [spooled for _, spooled in down["acks"]] == [True, True, True]
    assert down["recent"] == ([], "bypass")
    assert len(FileEventLog(state / "events.jsonl").read_all()) == 3

    victim.start()  # same port and folder: nodes.conf brings its slots back
    redis_cluster.wait_ok()

    async def up_phase() -> tuple[int, list[dict[str, Any]], tuple[list[int], str]]:
        guard = RedisGuard(redis_cluster.url, timeout_s=TIMEOUT_S)
        log = EventLog(guard, state, prefix=prefix)
        store = UserStateStore(guard, prefix=prefix)
        try:
            moved = await log.flush_spool()
            await store.push_recent(user, ["70"])
            return moved, [ev async for ev in log.iter_events()], await store.recent(user)
        finally:
            await guard.close()

    moved, events, recent = asyncio.run(up_phase())
    assert moved == 3
    assert [ev["item_id"] for ev in events] == ["100", "101", "102", "103"]
    assert [ev.get("spool_id") for ev in events[1:]] == [eid for eid, _ in down["acks"]]
    assert recent == (["70"], "hit")
    client = redis_cluster.client()
    try:
        client.delete(stream_key, f"{prefix}:hist:{{u{user}}}")
    finally:
        client.close()
