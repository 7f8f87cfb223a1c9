"""A Redis connection that fails fast and steps aside while Redis is down.

Every call goes through :meth:`RedisGuard.run`: on a connection error or timeout
the guard marks Redis down for ``cooldown_s`` seconds, during which callers get
:class:`RedisUnavailable` at once instead of waiting on another timeout. The
first call after the cooldown probes Redis again, so the cache comes back by
itself when Redis does.

Redis Cluster: a URL whose scheme is ``redis+cluster://`` (or ``rediss+cluster://``
for TLS) names any node of a cluster, e.g. ``redis+cluster://10.0.0.5:7000/0``; the
guard then talks to the whole cluster through redis-py's ``RedisCluster`` (it
discovers the other nodes and follows slot moves). Keys that one pipeline or
transaction touches together must hash to one slot there; the stores build such
keys with :func:`slot_tag`, which adds a hash tag in cluster mode only, so the
single-node key names stay as they were.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterError, RedisClusterUnreachableError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.contracts.errors import ConfigError

log = logging.getLogger("hybridrec.redis")
T = TypeVar("T")

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# What "Redis is not answering" looks like: one node (connection refused, timeout) or
# the cluster (a slot without a live master, no reachable node to learn the layout from).
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,  # includes ClusterDownError / MasterDownError (CLUSTERDOWN replies)
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    OSError,
)


class RedisUnavailable(Exception):
    """Redis is not answering (or was not answering a moment ago)."""


def cluster_node_url(url: str) -> str | None:
    """The plain ``redis://`` URL of a ``redis+cluster://`` URL, or None for a single node.

    Raises:
        ConfigError: A cluster URL names a database other than 0 (a cluster has one).
    """
    parts = urlsplit(url)
    plain = CLUSTER_SCHEMES.get(parts.scheme.lower())
    if plain is None:
        return None
    db = parts.path.strip("/")
    if db not in ("", "0"):
        raise ConfigError(
            f"Redis Cluster URL {url!r} names database {db}; a cluster has only database 0. "
            "Drop the path or use /0"
        )
    return urlunsplit((plain, parts.netloc, "", parts.query, parts.fragment))


class RedisGuard:
    """An asyncio Redis (or Redis Cluster) client with fast failure and automatic recovery.

    Args:
        url: ``redis://host:port/db`` for one server, ``redis+cluster://host:port`` for a
            cluster (any node; see the module docstring).
        timeout_s: Per-command socket timeout.
        cooldown_s: How long calls fail at once after a failure.
    """

    def __init__(self, url: str, *, timeout_s: float = 0.25, cooldown_s: float = 1.0) -> None:
        self.url = url
        node_url = cluster_node_url(url)
        self.cluster = node_url is not None
        self.client: aioredis.Redis
        if node_url is None:
            self.client = aioredis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                health_check_interval=0,
                retry_on_timeout=False,
            )
        else:
            # One retry (after the client re-reads the slot layout), no backoff: a failover
            # is followed, a dead cluster fails fast. The cluster client answers the same
            # commands as the single-node one, so callers see one client type.
            self.client = cast(
                aioredis.Redis,
                aioredis.RedisCluster.from_url(
                    node_url,
                    socket_timeout=timeout_s,
                    socket_connect_timeout=timeout_s,
                    health_check_interval=0,
                    retry=Retry(NoBackoff(), 1),
                ),
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
        except _UNAVAILABLE as exc:
            self.failures += 1
            self._down_until = time.monotonic() + self.cooldown_s
            log.warning("Redis at %s unavailable: %s", self.url, exc)
            raise RedisUnavailable(str(exc)) from exc

    async def ping(self) -> bool:
        """True when Redis answers now (every master, for a cluster; bypasses the cooldown)."""
        try:
            ok = await self.client.ping()
        except _UNAVAILABLE:
            self._down_until = time.monotonic() + self.cooldown_s
            return False
        self._down_until = 0.0
        return bool(ok)

    async def close(self) -> None:
        """Close the connection pool(s)."""
        await self.client.aclose()


def key(prefix: str, *parts: Any) -> str:
    """A namespaced Redis key, ``prefix:part1:part2``."""
    return ":".join([prefix, *(str(p) for p in parts)])


def slot_tag(tag: str, plain: Any, cluster: bool) -> str:
    """A key part that puts keys sharing ``tag`` in one Redis Cluster slot.

    In cluster mode it is the hash tag ``{tag}`` (Redis hashes only the text between
    the first braces, so every key holding ``{u42}`` lives on one node, and a pipeline
    or MULTI over them stays in one slot); on a single server it is ``plain``, the
    key part used before cluster support, so existing keys keep their names.
    """
    return "{" + tag + "}" if cluster else str(plain)
