"""The gateway's result cache against a real Redis: stamps, invalidation, expiry, Redis down."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis

from harness.processes import free_port
from services.gateway.result_cache import ResultCache, with_request_id
from shared.contracts.public_v1 import RecommendationRequest
from shared.stores.redis_conn import RedisGuard

T = TypeVar("T")
BODY = b'{"user_id":7,"items":[],"model_version":"v1","degraded":[]}'


def _run(url: str, body: Callable[[ResultCache], Awaitable[T]], ttl_s: float = 60) -> T:
    async def main() -> T:
        guard = RedisGuard(url, timeout_s=2.0)
        cache = ResultCache(guard, prefix=f"hrrc-{uuid.uuid4().hex[:8]}", ttl_s=ttl_s)
        try:
            return await body(cache)
        finally:
            await guard.close()

    return asyncio.run(main())


def test_miss_then_hit_per_request_and_version(redis_url: str) -> None:
    req = RecommendationRequest(user_id=7, k=10)

    async def body(c: ResultCache) -> None:
        cached, slot = await c.get(req, "v1")
        assert cached is None and slot is not None
        await c.put(slot, BODY)
        assert (await c.get(req, "v1"))[0] == BODY
        # Anything the answer depends on is part of the key.
        assert (await c.get(RecommendationRequest(user_id=7, k=11), "v1"))[0] is None
        assert (await c.get(RecommendationRequest(user_id=7, k=10, genres=["Drama"]), "v1"))[
            0
        ] is None
        assert (await c.get(req, "v2"))[0] is None
        assert (await c.get(RecommendationRequest(user_id=8, k=10), "v1"))[0] is None
        assert (c.hits, c.misses) == (1, 5)

    _run(redis_url, body)



def test_no_cache_reads_only_the_stamp(redis_url: str) -> None:
    """Cache-Control: no-cache computes anyway: the stored body is not read, the slot (and its
    stamp, which keeps a late write from being served) is the same as a full read's."""
    req = RecommendationRequest(user_id=7, k=10)

    async def body(c: ResultCache) -> None:
        _, slot = await c.get(req, "v1")
        assert slot is not None
        await c.put(slot, BODY)
        cached, lean = await c.get(req, "v1", read_body=False)
        assert cached is None and lean == slot
        await c.invalidate("7")
        _, after = await c.get(req, "v1", read_body=False)
        assert after is not None and after.stamp != slot.stamp
        assert (await c.get(req, "v1"))[0] is None  # the old stamp is not served

    _run(redis_url, body)

def test_event_and_new_item_make_answers_stale_even_mid_computation(redis_url: str) -> None:
    req = RecommendationRequest(user_id=7, k=10)
    anon = RecommendationRequest(recent_item_ids=[1, 2, 3], k=5)

    async def body(c: ResultCache) -> None:
        _, slot = await c.get(req, "v1")
        assert slot is not None
        await c.put(slot, BODY)
        assert await c.invalidate(7)
        assert (await c.get(req, "v1"))[0] is None
        # An answer computed from state read before an event must not be served after it.
        _, before_event = await c.get(req, "v1")
        assert before_event is not None
        assert await c.invalidate(7)
        await c.put(before_event, BODY)
        assert (await c.get(req, "v1"))[0] is None
        # Another user's answers are untouched by the event.
        _, other = await c.get(RecommendationRequest(user_id=8, k=10), "v1")
        assert other is not None
        await c.put(other, BODY)
        await c.invalidate(7)
        assert (await c.get(RecommendationRequest(user_id=8, k=10), "v1"))[0] == BODY
        # A new item makes every answer stale, anonymous ones included.
        _, aslot = await c.get(anon, "v1")
        assert aslot is not None
        await c.put(aslot, BODY)
        assert (await c.get(anon, "v1"))[0] == BODY
        assert await c.catalogue_changed()
        assert (await c.get(anon, "v1"))[0] is None
        assert (await c.get(RecommendationRequest(user_id=8, k=10), "v1"))[0] is None

    _run(redis_url, body)


def test_entries_expire_after_the_ttl(redis_url: str) -> None:
    req = RecommendationRequest(user_id=9, k=10)

    async def body(c: ResultCache) -> float:
        _, slot = await c.get(req, "v1")
        assert slot is not None
        await c.put(slot, BODY)
        assert (await c.get(req, "v1"))[0] == BODY
        with redis.Redis.from_url(redis_url) as r:
            ttl = float(r.ttl(slot.key))
        await asyncio.sleep(1.5)
        assert (await c.get(req, "v1"))[0] is None
        return ttl

    assert 0 < _run(redis_url, body, ttl_s=1) <= 1


def test_redis_down_means_no_cache_and_no_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    req = RecommendationRequest(user_id=7, k=10)

    async def body(c: ResultCache) -> None:
        start = time.monotonic()
        assert await c.get(req, "v1") == (None, None)
        assert not await c.invalidate(7)
        assert not await c.catalogue_changed()
        assert time.monotonic() - start < 30  # returns instead of hanging

    _run(url, body)


def test_request_id_is_added_to_a_stored_body() -> None:
    out = json.loads(with_request_id(BODY, "abc-1"))
    assert out["request_id"] == "abc-1" and out["user_id"] == 7
    assert json.loads(with_request_id(BODY, None))["request_id"] is None
