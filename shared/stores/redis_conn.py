"""A Redis connection that fails fast and steps aside while Redis is down.

Every call goes through :meth:`RedisGuard.run`: on a connection error or timeout
the guard marks Redis down for ``cooldown_s`` seconds, during which callers get
:class:`RedisUnavailable` at once instead of waiting on another timeout. The
first call after the cooldown probes Redis again, so the cache comes back by
itself when Redis does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("hybridrec.redis")
T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis is not answering (or was not answering a moment ago)."""


class RedisGuard:
    """An asyncio Redis client with fast failure and automatic recovery."""

    def __init__(self, url: str, *, timeout_s: float = 0.25, cooldown_s: float = 1.0) -> None:
        self.url = url
        self.client: aioredis.Redis = aioredis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=0,
            retry_on_timeout=False,
        )
        self.cooldown_s = cooldown_s
        self._down_until = 0.0
        self.failures = 0

    @property
    def available(self) -> bool:
        """False while in the cooldown after a failure."""
        return time.monotonic() >= self._down_until

    async def run(self, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run ``fn(client)``; raise :class:`RedisUnavailable` when Redis is down."""
        if not self.available:
            raise RedisUnavailable(f"Redis at {self.url} is down (retrying shortly)")
        try:
            return await fn(self.client)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self.failures += 1
            self._down_until = time.monotonic() + self.cooldown_s
            log.warning("Redis at %s unavailable: %s", self.url, exc)
            raise RedisUnavailable(str(exc)) from exc

    async def ping(self) -> bool:
        """True when Redis answers now (bypasses the cooldown)."""
        try:
            ok = await self.client.ping()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            self._down_until = time.monotonic() + self.cooldown_s
            return False
        self._down_until = 0.0
        return bool(ok)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def key(prefix: str, *parts: Any) -> str:
    """A namespaced Redis key, ``prefix:part1:part2``."""
    return ":".join([prefix, *(str(p) for p in parts)])
