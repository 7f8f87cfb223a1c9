"""UserStateStore: vectors and history in memory and in a real Redis, and Redis crashes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import redis

from harness.redis_server import RedisProcess
from shared.contracts.errors import ConfigError
from shared.stores.redis_conn import RedisGuard, RedisUnavailable, key
from shared.stores.user_state import UserStateStore

# generous: a busy 2-core machine must not turn a slow answer into "Redis down"
TIMEOUT_S = 2.0

T = TypeVar("T")
HANG_GUARD_S = 5.0  # only proves a call returns instead of hanging; not a latency check


def _run(
    backend: str,
    redis_url: str,
    prefix: str,
    body: Callable[[UserStateStore], Awaitable[T]],
    **kwargs: Any,
) -> T:
    """Run ``body(store)`` in a fresh event loop with the chosen backend."""

    async def main() -> T:
        guard = RedisGuard(redis_url, timeout_s=TIMEOUT_S) if backend == "redis" else None
        store = UserStateStore(guard, prefix=prefix, **kwargs)
        try:
            return await body(store)
        finally:
            if guard is not None:
                await guard.close()

    return asyncio.run(main())


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_backend_name(backend: str, redis_url: str, redis_prefix: str) -> None:
    async def body(store: UserStateStore) -> str:
        return store.backend

    assert _run(backend, redis_url, redis_prefix, body) == backend


def test_vector_set_get_hit_miss(backend: str, redis_url: str, redis_prefix: str) -> None:
    vec = np.arange(8, dtype=np.float32) / 7.0

    async def body(store: UserStateStore) -> list[Any]:
        before = await store.get_vector("v1", "u1")
        status_set = await store.set_vector("v1", "u1", vec)
        hit = await store.get_vector("v1", "u1")
        other_user = await store.get_vector("v1", "u2")
        return [before, status_set, hit, other_user]

    before, status_set, hit, other_user = _run(backend, redis_url, redis_prefix, body)
    assert before == (None, "miss")
    assert status_set == "miss"  # written; "bypass" would mean skipped
    got, status = hit
    assert status == "hit"
    assert got is not None and got.dtype == np.float32 and got.shape == (8,)
    np.testing.assert_array_equal(got, vec)
    assert other_user == (None, "miss")


def test_recent_and_vector_in_one_read(backend: str, redis_url: str, redis_prefix: str) -> None:
    vec = np.linspace(-1, 1, 6, dtype=np.float32)

    async def body(store: UserStateStore) -> list[Any]:
        empty = await store.recent_and_vector("7", "v1", "u7")
        await store.push_recent("7", ["3", "4"])
        no_vector = await store.recent_and_vector("7", "v1", "u7")
        await store.set_vector("v1", "u7", vec)
        both = await store.recent_and_vector("7", "v1", "u7")
        other_version = await store.recent_and_vector("7", "v2", "u7")
        not_asked = await store.recent_and_vector("7", "v1", None)
        return [empty, no_vector, both, other_version, not_asked]

    empty, no_vector, both, other_version, not_asked = _run(backend, redis_url, redis_prefix, body)
    assert empty == ([], "hit", None, "miss", set(), set())
    assert no_vector == (["3", "4"], "hit", None, "miss", {"3", "4"}, set())  # ids as text
    recent, status, got, vstatus, seen, _ = both
    assert (recent, status, vstatus, seen) == (["3", "4"], "hit", "hit", {"3", "4"})
    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got, vec)
    # a vector of another bundle is unused
    assert other_version == (["3", "4"], "hit", None, "miss", {"3", "4"}, set())
    assert not_asked == (["3", "4"], "hit", None, "miss", {"3", "4"}, set())


def test_seen_set_keeps_everything_the_capped_list_drops(
    backend: str, redis_url: str, redis_prefix: str
) -> None:
    """The recent list keeps the last ``max_history``; the seen set keeps every item pushed."""
    pushed = [f"sku-{i}" for i in range(100, 230)]  # 130 items, far beyond max_history=50

    async def body(store: UserStateStore) -> tuple[Any, Any, Any]:
        for start in range(0, len(pushed), 7):
            assert await store.push_recent("5", pushed[start : start + 7]) == "hit"
        await store.push_recent("5", ["sku-100", "sku-101"])  # seen again: the set does not grow
        await store.push_recent("6", ["1"])  # another user's set is apart
        return (
            await store.recent_and_vector("5", "v1", "u5"),
            await store.recent_and_vector("5", "v1", None),
            await store.recent_and_vector("6", "v1", None),
        )

    with_vec, without_vec, other = _run(backend, redis_url, redis_prefix, body, max_history=50)
    assert with_vec.recent == [*pushed[-48:], "sku-100", "sku-101"]  # capped at 50
    assert with_vec.seen == set(pushed)
    assert without_vec.seen == set(pushed) and without_vec.recent == with_vec.recent
    assert other.seen == {"1"}
    if backend == "redis":
        client = redis.Redis.from_url(redis_url)
        try:
            members = client.smembers(key(redis_prefix, "seen", "5"))
            assert {m.decode() for m in members} == set(pushed)
            assert client.llen(key(redis_prefix, "hist", "5")) == 50
        finally:
            client.close()


def test_seen_only_items_are_seen_but_not_recent(
    backend: str, redis_url: str, redis_prefix: str
) -> None:
    """A low rating: remembered as seen (exclude_seen), kept out of the recent history."""

    async def body(store: UserStateStore) -> Any:
        await store.push_recent("8", ["1", "2"])
        assert await store.push_recent("8", ["3"], seen_only=True) == "hit"
        await store.push_recent("8", ["4"])
        return await store.recent_and_vector("8", "v1", None)

    got = _run(backend, redis_url, redis_prefix, body, max_history=50)
    assert got.recent == ["1", "2", "4"] and got.seen == {"1", "2", "3", "4"}


def test_hidden_items_are_seen_hidden_and_not_recent(
    backend: str, redis_url: str, redis_prefix: str
) -> None:
    """A dislike or hide: seen, in the hidden set (read with the rest), never in the recent
    history; another user's hidden set is apart; the hidden read alone agrees."""

    async def body(store: UserStateStore) -> Any:
        await store.push_recent("8", ["1", "2"])
        assert await store.push_recent("8", ["2", "3"], hidden=True) == "hit"
        await store.push_recent("8", ["4"])
        await store.push_recent("9", ["1"], hidden=True)
        return (await store.recent_and_vector("8", "v1", "u8"), await store.hidden("8"),
                await store.recent_and_vector("7", "v1", None))

    got, alone, nobody = _run(backend, redis_url, redis_prefix, body, max_history=50)
    assert got.recent == ["1", "2", "4"] and got.seen == {"1", "2", "3", "4"}
    assert got.hidden == {"2", "3"} and alone == ({"2", "3"}, "hit")
    assert nobody.hidden == set()
    if backend == "redis":
        client = redis.Redis.from_url(redis_url)
        try:
            members = client.smembers(key(redis_prefix, "hidden", "8"))
            assert {m.decode() for m in members} == {"2", "3"}
        finally:
            client.close()


def test_seen_set_read_is_one_round_trip(redis_url: str, redis_prefix: str) -> None:
    """History, seen set and vector come back from one pipeline (one network round trip)."""
    calls: list[int] = []

    async def body(store: UserStateStore) -> Any:
        await store.push_recent("9", ["1", "2", "3"])
        assert store.guard is not None
        run = store.guard.run

        async def counting(fn):  # type: ignore[no-untyped-def]
            calls.append(1)
            return await run(fn)

        store.guard.run = counting  # type: ignore[method-assign]
        return await store.recent_and_vector("9", "v1", "u9")

    read = _run("redis", redis_url, redis_prefix, body)
    assert calls == [1]
    assert read.seen == {"1", "2", "3"} and read.recent == ["1", "2", "3"]
    assert read.hidden == set()  # the hidden set travels in the same pipeline


def test_vector_from_float64_is_stored_as_float32(
    backend: str, redis_url: str, redis_prefix: str
) -> None:
    vec = np.array([0.1, -2.5, 3.0], dtype=np.float64)

    async def body(store: UserStateStore) -> tuple[np.ndarray | None, str]:
        await store.set_vector("v1", "anon-abc", vec)
        return await store.get_vector("v1", "anon-abc")

    got, status = _run(backend, redis_url, redis_prefix, body)
    assert status == "hit"
    assert got is not None and got.dtype == np.float32
    np.testing.assert_allclose(got, vec.astype(np.float32))


def test_vector_key_includes_model_version(backend: str, redis_url: str, redis_prefix: str) -> None:
    vec_a = np.ones(4, dtype=np.float32)
    vec_b = np.full(4, 2.0, dtype=np.float32)

    async def body(store: UserStateStore) -> list[Any]:
        await store.set_vector("bundle-A", "u5", vec_a)
        miss_b = await store.get_vector("bundle-B", "u5")
        await store.set_vector("bundle-B", "u5", vec_b)
        got_a = await store.get_vector("bundle-A", "u5")
        return [miss_b, got_a, await store.get_vector("bundle-B", "u5")]

    miss_b, got_a, got_b = _run(backend, redis_url, redis_prefix, body)
    assert miss_b == (None, "miss")
    assert got_a[1] == "hit" and got_b[1] == "hit"
    np.testing.assert_array_equal(got_a[0], vec_a)
    np.testing.assert_array_equal(got_b[0], vec_b)


def test_redis_vector_key_layout_and_ttl(redis_url: str, redis_prefix: str) -> None:
    async def body(store: UserStateStore) -> None:
        await store.set_vector("2024-01-01T00-00-00", "u42", np.zeros(3, np.float32))

    _run("redis", redis_url, redis_prefix, body, vector_ttl_s=120)
    client = redis.Redis.from_url(redis_url)
    try:
        k = key(redis_prefix, "uvec", "2024-01-01T00-00-00", "u42")
        assert k == f"{redis_prefix}:uvec:2024-01-01T00-00-00:u42"
        assert client.get(k) == np.zeros(3, np.float32).tobytes()
        assert 0 < int(client.ttl(k)) <= 120
    finally:
        client.close()


def test_invalidate_drops_only_that_users_vector_of_that_version(
    backend: str, redis_url: str, redis_prefix: str
) -> None:
    vec = np.ones(2, dtype=np.float32)

    async def body(store: UserStateStore) -> list[str]:
        await store.set_vector("v1", "u7", vec)
        await store.set_vector("v1", "u8", vec)
        await store.set_vector("v2", "u7", vec)
        await store.invalidate("v1", "7")
        await store.invalidate("v1", "12345")  # unknown user: a no-op, no error
        return [
            (await store.get_vector("v1", "u7"))[1],
            (await store.get_vector("v1", "u8"))[1],
            (await store.get_vector("v2", "u7"))[1],
        ]

    assert _run(backend, redis_url, redis_prefix, body) == ["miss", "hit", "hit"]


def test_recent_history_push_trim_and_order(
    backend: str, redis_url: str, redis_prefix: str
) -> None:
    async def body(store: UserStateStore) -> list[Any]:
        unknown = await store.recent("99")
        s1 = await store.push_recent("1", ["10", "11", "12"])
        after_first = await store.recent("1")
        await store.push_recent("1", ["13", "14"])
        after_trim = await store.recent("1")
        s_empty = await store.push_recent("1", [])
        after_empty = await store.recent("1")
        await store.push_recent("2", ["a:b@c.d-e_f"])  # the whole alphabet
        other = await store.recent("2")
        return [unknown, s1, after_first, after_trim, s_empty, after_empty, other]

    unknown, s1, after_first, after_trim, s_empty, after_empty, other = _run(
        backend, redis_url, redis_prefix, body, max_history=4
    )
    assert unknown == ([], "hit")
    assert s1 == "hit"
    assert after_first == (["10", "11", "12"], "hit")
    # most recent last, oldest dropped first
    assert after_trim == (["11", "12", "13", "14"], "hit")
    assert s_empty == "hit"
    assert after_empty == (["11", "12", "13", "14"], "hit")
    assert other == (["a:b@c.d-e_f"], "hit")


def test_single_push_longer_than_max_history_keeps_the_tail(
    backend: str, redis_url: str, redis_prefix: str
) -> None:
    async def body(store: UserStateStore) -> list[str]:
        await store.push_recent("3", [str(i) for i in range(1, 11)])
        return (await store.recent("3"))[0]

    assert _run(backend, redis_url, redis_prefix, body, max_history=3) == ["8", "9", "10"]


def test_max_history_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="max_history must be >= 1"):
        UserStateStore(None, max_history=0)


def test_memory_backend_evicts_least_recently_used() -> None:
    async def body() -> list[str]:
        store = UserStateStore(None, max_local_users=2)
        v = np.zeros(2, np.float32)
        await store.set_vector("v", "a", v)
        await store.set_vector("v", "b", v)
        await store.get_vector("v", "a")  # a is now the most recently used
        await store.set_vector("v", "c", v)  # evicts b
        await store.push_recent("1", ["1"])
        await store.push_recent("2", ["2"])
        await store.push_recent("1", ["3"])
        await store.push_recent("3", ["4"])  # evicts user 2
        return [
            (await store.get_vector("v", "a"))[1],
            (await store.get_vector("v", "b"))[1],
            (await store.get_vector("v", "c"))[1],
            str((await store.recent("1"))[0]),
            str((await store.recent("2"))[0]),
        ]

    assert asyncio.run(body()) == ["hit", "miss", "hit", "['1', '3']", "[]"]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


async def _bounded(aw: Awaitable[T]) -> T:
    return await asyncio.wait_for(aw, HANG_GUARD_S)


def test_redis_killed_every_call_bypasses_then_recovers(private_redis: RedisProcess) -> None:
    vec = np.arange(4, dtype=np.float32)

    async def main() -> dict[str, Any]:
        guard = RedisGuard(private_redis.url, timeout_s=TIMEOUT_S, cooldown_s=0.2)
        store = UserStateStore(guard, prefix="hr")
        out: dict[str, Any] = {}
        try:
            assert await store.set_vector("v1", "u1", vec) == "miss"
            await store.push_recent("1", ["5", "6"])
            out["before"] = (await store.get_vector("v1", "u1"))[1]

            private_redis.kill()
            # The first call meets the dead connection; the next ones hit the cooldown
            # or a refused connect. Every one must answer "bypass", none may raise.
            out["down"] = [
                (await _bounded(store.get_vector("v1", "u1")))[1],
                await _bounded(store.set_vector("v1", "u2", vec)),
                (await _bounded(store.recent("1")))[1],
                await _bounded(store.push_recent("1", ["7"])),
                (await _bounded(store.get_vector("v1", "u1")))[1],
                (await _bounded(store.recent_and_vector("1", "v1", "u1")))[1],
                (await _bounded(store.recent_and_vector("1", "v1", "u1")))[3],
            ]
            await _bounded(store.invalidate("v1", "1"))  # swallowed, returns None
            out["failures"] = guard.failures
            out["available_during_cooldown"] = guard.available
            with pytest.raises(RedisUnavailable):
                await guard.run(lambda r: r.ping())

            private_redis.start()  # same port and folder, empty data (no persistence)
            await asyncio.sleep(guard.cooldown_s + 0.05)
            out["after_set"] = await store.set_vector("v1", "u1", vec)
            got, status = await store.get_vector("v1", "u1")
            out["after_get"] = status
            out["after_vec"] = got
            await store.push_recent("1", ["8"])
            out["after_recent"] = await store.recent("1")
        finally:
            await guard.close()
        return out

    out = asyncio.run(main())
    assert out["before"] == "hit"
    assert out["down"] == ["bypass"] * 7
    assert out["failures"] >= 1
    assert out["available_during_cooldown"] is False
    assert out["after_set"] == "miss"
    assert out["after_get"] == "hit"
    np.testing.assert_array_equal(out["after_vec"], vec)
    assert out["after_recent"] == (["8"], "hit")


def test_guard_ping_bypasses_cooldown(private_redis: RedisProcess) -> None:
    async def main() -> list[bool]:
        guard = RedisGuard(private_redis.url, timeout_s=TIMEOUT_S, cooldown_s=60.0)
        try:
            private_redis.kill()
            down = await guard.ping()
            stuck = guard.available  # a 60 s cooldown is running
            private_redis.start()
            up = await guard.ping()  # probes anyway and clears the cooldown
            return [down, stuck, up, guard.available]
        finally:
            await guard.close()

    # available again at once: the 60 s cooldown was cleared, not waited out
    assert asyncio.run(main()) == [False, False, True, True]
