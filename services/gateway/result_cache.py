"""Finished recommendation answers cached in Redis, invalidated by the user's feedback.

Most recommendation traffic repeats: the same user opens the same page again before
anything about them changed. The gateway keeps each undegraded answer (the JSON body
without its ``request_id``) in Redis for ``ttl_s`` seconds, shared by every gateway
replica, and serves a repeat from there without calling retrieval or ranking.

Keys:

* a known user: one hash ``{prefix}:recs:u:{user_id}`` with a ``gen`` counter and one
  field per distinct request, named by a digest of the model version, ``k``,
  ``exclude_seen``, genres, ``explain`` and any session context of a POST;
* an anonymous request: a hash ``{prefix}:recs:a:{digest}`` of its own;
* ``{prefix}:recs:catalogue``: a counter bumped when an item is added at run time.

Each stored body is stamped with the user's ``gen`` and the catalogue counter read
*before* it was computed, and is served only while both still match. A feedback
event bumps the user's ``gen`` after the event changed their history, and adding an
item bumps the catalogue counter, so the next request computes a fresh answer; an
answer whose computation began before a bump carries the old stamp and is never
served. One round trip per lookup (a pipeline of three reads; no multi-key script,
so it also works on Redis Cluster). A new model version changes every digest.
Redis down: no caching, nothing fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

from shared.contracts.public_v1 import RecommendationRequest
from shared.stores.redis_conn import RedisGuard, RedisUnavailable, key

log = logging.getLogger("hybridrec.gateway")

CacheStatus = Literal["hit", "miss", "off"]

@dataclass(frozen=True)
class CacheSlot:
    """Where one request's answer lives, and the stamp it must carry to be served."""

    key: str
    field: str
    stamp: bytes


class ResultCache:
    """Redis-backed cache of finished recommendation bodies."""

    def __init__(self, guard: RedisGuard, *, prefix: str, ttl_s: float) -> None:
        self.guard = guard
        self.prefix = prefix
        self.ttl_s = max(1, round(ttl_s))
        self.catalogue_key = key(prefix, "recs", "catalogue")
        self.hits = 0
        self.misses = 0

    def _user_key(self, user_id: str) -> str:
        return key(self.prefix, "recs", "u", user_id)

    @staticmethod
    def digest(req: RecommendationRequest, version: str) -> str:
        """Hash of everything an answer depends on besides the user's stored state."""
        parts: dict[str, Any] = req.model_dump(mode="json", exclude={"user_id"})
        parts["v"] = version
        raw = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.blake2b(raw, digest_size=12).hexdigest()

    async def get(
        self, req: RecommendationRequest, version: str, *, read_body: bool = True
    ) -> tuple[bytes | None, CacheSlot | None]:
        """The cached body (without ``request_id``) and the slot to store a fresh one in.

        Returns ``(None, None)`` when Redis is unavailable (then nothing is cached).
        ``read_body=False`` (an answer computed whatever is cached) reads only the stamp.
        """
        digest = self.digest(req, version)
        k = (
            self._user_key(req.user_id)
            if req.user_id is not None
            else key(self.prefix, "recs", "a", digest)
        )

        async def _read(r):  # type: ignore[no-untyped-def]
            async with r.pipeline(transaction=False) as pipe:
                pipe.hget(k, "gen")
                pipe.get(self.catalogue_key)
                if read_body:
                    pipe.hget(k, digest)
                return await pipe.execute()

        try:
            gen, catalogue, *body = await self.guard.run(_read)
        except RedisUnavailable:
            return None, None
        stamp = b"%s:%s:" % (gen or b"0", catalogue or b"0")
        slot = CacheSlot(k, digest, stamp)
        stored = body[0] if body else None
        if stored is not None and bytes(stored).startswith(stamp):
            self.hits += 1
            return bytes(stored)[len(stamp) :], slot
        self.misses += 1
        return None, slot

    async def put(self, slot: CacheSlot, body: bytes) -> None:
        """Store a body in its slot for ``ttl_s`` (a Redis failure is only logged)."""

        async def _put(r):  # type: ignore[no-untyped-def]
            async with r.pipeline(transaction=False) as pipe:
                pipe.hset(slot.key, slot.field, slot.stamp + body)
                pipe.expire(slot.key, self.ttl_s)
                return await pipe.execute()

        try:
            await self.guard.run(_put)
        except RedisUnavailable as exc:
            log.debug("recommendation not cached: %s", exc)

    async def invalidate(self, user_id: str) -> bool:
        """Make every cached answer of a user stale; False when Redis is unavailable."""
        k = self._user_key(user_id)

        async def _bump(r):  # type: ignore[no-untyped-def]
            async with r.pipeline(transaction=True) as pipe:
                pipe.hincrby(k, "gen", 1)
                pipe.expire(k, self.ttl_s)
                return await pipe.execute()

        try:
            await self.guard.run(_bump)
        except RedisUnavailable:
            return False
        return True


    async def catalogue_changed(self) -> bool:
        """Make every cached answer stale (an item was added); False when Redis is unavailable."""
        try:
            await self.guard.run(lambda r: r.incr(self.catalogue_key))
        except RedisUnavailable:
            return False
        return True


def with_request_id(body: bytes, request_id: str | None) -> bytes:
    """Add ``request_id`` to a cached JSON object body (stored without it)."""
    return body[:-1] + b',"request_id":' + json.dumps(request_id).encode() + b"}"
