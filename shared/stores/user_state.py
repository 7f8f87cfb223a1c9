"""Recent history and cached user vectors, in Redis or in process.

Keys (Redis): ``<prefix>:uvec:<model_version>:<user_key>`` holds a float32 vector
(raw bytes) with a TTL; ``<prefix>:hist:<user_id>`` is a list of recent item ids,
most recent last, trimmed to ``max_history``; ``<prefix>:seen:<user_id>`` is the set of
every item id pushed since the user's state began (not trimmed: ``exclude_seen`` must
leave out everything a user saw after the bundle was trained, not only the recent
list's last ``max_history``); ``<prefix>:hidden:<user_id>`` is the set of item ids the user
hid or disliked (negative events: never recommended to them again, whatever
``exclude_seen``; not trimmed). Because the model version is part of the vector key, a
vector cached under one bundle is never used with another. On Redis Cluster the user
part of every key is the hash tag ``{u<user_id>}`` (``<prefix>:hist:{u42}``,
``<prefix>:seen:{u42}``, ``<prefix>:hidden:{u42}``, ``<prefix>:uvec:<version>:{u42}``; a
user's vector key is ``u<user_id>``), so the one-round-trip read of all four stays in one
slot. User and item
ids are strings of the safe alphabet of :mod:`shared.contracts.ids` (no braces, so a user
id never breaks the hash tag); Redis returns them as bytes, decoded here as ASCII.
When Redis is down every read is a miss and every write is skipped
(``status == "bypass"``); the service keeps answering without the cache.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Literal, NamedTuple

import numpy as np

from shared.contracts.errors import ConfigError
from shared.stores.redis_conn import RedisGuard, RedisUnavailable, key, slot_tag

CacheStatus = Literal["hit", "miss", "bypass"]


def _text(raw: bytes | str) -> str:
    """A stored id as text (Redis answers bytes)."""
    return raw.decode("ascii") if isinstance(raw, bytes) else raw


def _decode(raw: bytes | str) -> np.ndarray:
    """A cached vector's raw bytes as a writable float32 array ``[d]``."""
    data = raw.encode("latin-1") if isinstance(raw, str) else raw
    return np.frombuffer(data, dtype=np.float32).copy()


class UserRead(NamedTuple):
    """What :meth:`UserStateStore.recent_and_vector` read in one round trip."""

    recent: list[str]  # recent item ids, most recent last (at most ``max_history``)
    status: CacheStatus  # of the history read
    vector: np.ndarray | None  # the cached query vector [d] float32, if asked for and cached
    vector_status: CacheStatus  # ``miss`` when no vector was asked for
    seen: set[str]  # every item id pushed for the user (empty when Redis is down)
    hidden: set[str] = set()  # item ids the user hid or disliked (empty when Redis is down)


class UserStateStore:
    """User vectors (cache) and recent history (state)."""

    def __init__(
        self,
        guard: RedisGuard | None,
        *,
        prefix: str = "hybridrec",
        max_history: int = 50,
        vector_ttl_s: int = 86_400,
        max_local_users: int = 100_000,
    ) -> None:
        if max_history < 1:
            # LTRIM key -0 -1 would keep the whole list, so 0 cannot mean "keep none".
            raise ConfigError(f"max_history must be >= 1, got {max_history}")
        self.guard = guard
        self.cluster = guard is not None and guard.cluster
        self.prefix = prefix
        self.max_history = max_history
        self.vector_ttl_s = vector_ttl_s
        self.max_local_users = max_local_users
        self._vectors: OrderedDict[str, bytes] = OrderedDict()
        self._history: OrderedDict[str, list[str]] = OrderedDict()
        self._seen: dict[str, set[str]] = {}  # evicted with the user's history
        self._hidden: dict[str, set[str]] = {}  # likewise

    @property
    def backend(self) -> str:
        """``redis`` or ``memory``."""
        return "redis" if self.guard is not None else "memory"

    def _vkey(self, version: str, user_key: str) -> str:
        return key(self.prefix, "uvec", version, slot_tag(user_key, user_key, self.cluster))

    def _hkey(self, user_id: str) -> str:
        return key(self.prefix, "hist", slot_tag(f"u{user_id}", user_id, self.cluster))

    def _skey(self, user_id: str) -> str:
        return key(self.prefix, "seen", slot_tag(f"u{user_id}", user_id, self.cluster))

    def _xkey(self, user_id: str) -> str:
        return key(self.prefix, "hidden", slot_tag(f"u{user_id}", user_id, self.cluster))

    async def get_vector(
        self, version: str, user_key: str
    ) -> tuple[np.ndarray | None, CacheStatus]:
        """The cached vector ``[d]`` float32, or None, and whether it was a hit."""
        k = self._vkey(version, user_key)
        raw: bytes | str | None
        if self.guard is None:
            raw = self._vectors.get(k)
            if raw is not None:
                self._vectors.move_to_end(k)
        else:
            try:
                raw = await self.guard.run(lambda r: r.get(k))
            except RedisUnavailable:
                return None, "bypass"
        if raw is None:
            return None, "miss"
        return _decode(raw), "hit"

    async def set_vector(self, version: str, user_key: str, vector: np.ndarray) -> CacheStatus:
        """Cache ``vector`` ``[d]``; returns ``bypass`` when Redis is down."""
        raw = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        k = self._vkey(version, user_key)
        if self.guard is None:
            self._vectors[k] = raw
            self._vectors.move_to_end(k)
            while len(self._vectors) > self.max_local_users:
                self._vectors.popitem(last=False)
            return "miss"
        try:
            await self.guard.run(lambda r: r.set(k, raw, ex=self.vector_ttl_s))
        except RedisUnavailable:
            return "bypass"
        return "miss"

    async def invalidate(self, version: str, user_id: str) -> None:
        """Drop the cached vector of a known user (after new feedback)."""
        k = self._vkey(version, f"u{user_id}")
        if self.guard is None:
            self._vectors.pop(k, None)
            return
        # If Redis is down the vector may stay stale until its TTL expires.
        with contextlib.suppress(RedisUnavailable):
            await self.guard.run(lambda r: r.delete(k))

    async def recent(self, user_id: str) -> tuple[list[str], CacheStatus]:
        """Recent item ids of a user, most recent last."""
        if self.guard is None:
            return list(self._history.get(user_id, [])), "hit"
        try:
            raw = await self.guard.run(lambda r: r.lrange(self._hkey(user_id), 0, -1))
        except RedisUnavailable:
            return [], "bypass"
        return [_text(x) for x in raw], "hit"

    async def hidden(self, user_id: str) -> tuple[set[str], CacheStatus]:
        """The item ids a user hid or disliked since the state began."""
        if self.guard is None:
            return set(self._hidden.get(user_id, ())), "hit"
        try:
            raw = await self.guard.run(lambda r: r.smembers(self._xkey(user_id)))
        except RedisUnavailable:
            return set(), "bypass"
        return {_text(x) for x in raw}, "hit"

    async def recent_and_vector(
        self, user_id: str, version: str, user_key: str | None
    ) -> UserRead:
        """:meth:`recent`, the seen and hidden sets and (when ``user_key`` is given)
        :meth:`get_vector`.

        One Redis round trip (a pipeline of LRANGE, two SMEMBERS and GET on keys of one slot).
        The vector status is ``miss`` when no key was asked for.
        """
        if self.guard is None:
            recent, status = await self.recent(user_id)
            seen = set(self._seen.get(user_id, ()))
            hidden = set(self._hidden.get(user_id, ()))
            if user_key is None:
                return UserRead(recent, status, None, "miss", seen, hidden)
            vec, vstatus = await self.get_vector(version, user_key)
            return UserRead(recent, status, vec, vstatus, seen, hidden)
        hk, sk, xk = self._hkey(user_id), self._skey(user_id), self._xkey(user_id)
        vk = self._vkey(version, user_key) if user_key is not None else None

        async def _read(r):  # type: ignore[no-untyped-def]
            async with r.pipeline(transaction=False) as pipe:
                pipe.lrange(hk, 0, -1)
                pipe.smembers(sk)
                pipe.smembers(xk)
                if vk is not None:
                    pipe.get(vk)
                return await pipe.execute()

        try:
            raw = await self.guard.run(_read)
        except RedisUnavailable:
            return UserRead([], "bypass", None, "bypass" if vk is not None else "miss", set())
        recent = [_text(x) for x in raw[0]]
        seen = {_text(x) for x in raw[1]}
        hidden = {_text(x) for x in raw[2]}
        raw_vec = raw[3] if vk is not None else None
        if raw_vec is None:
            return UserRead(recent, "hit", None, "miss", seen, hidden)
        return UserRead(recent, "hit", _decode(raw_vec), "hit", seen, hidden)

    async def push_recent(
        self, user_id: str, item_ids: list[str], *, seen_only: bool = False, hidden: bool = False
    ) -> CacheStatus:
        """Append item ids to a user's recent history (trimmed to ``max_history``) and
        add them to the user's seen set (not trimmed), in one transaction.

        ``seen_only`` adds them to the seen set alone: items the user saw but did not
        like (a low rating, a dislike) are never recommended again with ``exclude_seen``,
        and never shape the recent history the query tower reads. ``hidden`` (a dislike or
        hide) adds them to the seen set and to the user's hidden set, which retrieval and the
        gateway's popular fallback exclude whatever ``exclude_seen``; it implies
        ``seen_only``.
        """
        seen_only = seen_only or hidden
        if not item_ids:
            return "hit"
        ids = [str(i) for i in item_ids]
        if self.guard is None:
            hist = self._history.setdefault(user_id, [])
            if not seen_only:
                hist.extend(ids)
                del hist[: max(0, len(hist) - self.max_history)]
            self._seen.setdefault(user_id, set()).update(ids)
            if hidden:
                self._hidden.setdefault(user_id, set()).update(ids)
            self._history.move_to_end(user_id)
            while len(self._history) > self.max_local_users:
                evicted, _ = self._history.popitem(last=False)
                self._seen.pop(evicted, None)
                self._hidden.pop(evicted, None)
            return "hit"
        hk, sk, xk = self._hkey(user_id), self._skey(user_id), self._xkey(user_id)

        async def _push(r):  # type: ignore[no-untyped-def]
            async with r.pipeline(transaction=True) as pipe:
                if not seen_only:
                    pipe.rpush(hk, *ids)
                    pipe.ltrim(hk, -self.max_history, -1)
                pipe.sadd(sk, *ids)
                if hidden:
                    pipe.sadd(xk, *ids)
                return await pipe.execute()

        try:
            await self.guard.run(_push)
        except RedisUnavailable:
            return "bypass"
        return "hit"
