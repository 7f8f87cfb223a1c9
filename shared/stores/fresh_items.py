"""Items added at run time, kept durably until the next index build folds them in.

Annoy indexes are immutable, so new items live in this store and are searched
exactly beside the index. Records are JSON: the item's fields plus its content
(BERT) vector and item-tower vector, base64-encoded float32. Backends: a Redis
hash ``{prefix}:fresh:items`` with ids from ``INCR {prefix}:fresh:next_id``, or an
fsync'd JSON-lines file ``<state_dir>/fresh_items.jsonl``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from shared.stores.events import durable_append, read_json_lines
from shared.stores.redis_conn import RedisGuard, key

# Atomically: raise the counter to at least ARGV[1] - 1, then INCR it. Doing this
# in one script keeps concurrent adds (several gateway workers) from both seeing
# a counter below the catalogue's ids and handing out the same id.
_NEXT_ID_SCRIPT = """
local floor = tonumber(ARGV[1]) - 1
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur == nil or cur < floor then
  redis.call('SET', KEYS[1], floor)
end
return redis.call('INCR', KEYS[1])
"""


def encode_vector(v: np.ndarray) -> str:
    """float32 vector -> base64 text."""
    return base64.b64encode(np.ascontiguousarray(v, dtype=np.float32).tobytes()).decode()


def decode_vector(s: str) -> np.ndarray:
    """base64 text -> float32 vector."""
    return np.frombuffer(base64.b64decode(s), dtype=np.float32).copy()


class FreshItemStore:
    """Durable store of run-time items; ``add`` assigns ids above the catalogue's."""

    def __init__(
        self, guard: RedisGuard | None, state_dir: str | Path, *, prefix: str = "hybridrec"
    ):
        self.guard = guard
        self.hash_key = key(prefix, "fresh", "items")
        self.id_key = key(prefix, "fresh", "next_id")
        self.path = Path(state_dir) / "fresh_items.jsonl"
        self._lock = threading.Lock()

    async def add(self, record: dict[str, Any], min_id: int) -> dict[str, Any]:
        """Store ``record`` (without item_id) and return it with its new ``item_id``.

        Raises:
            RedisUnavailable: Redis is configured but down (the caller answers 503).
        """
        if self.guard is not None:
            new_id = int(
                await self.guard.run(
                    lambda r: r.eval(_NEXT_ID_SCRIPT, 1, self.id_key, str(int(min_id)))
                )
            )
            full = {**record, "item_id": new_id}
            await self.guard.run(lambda r: r.hset(self.hash_key, str(new_id), json.dumps(full)))
            return full
        return await asyncio.to_thread(self._add_file, record, min_id)

    def _add_file(self, record: dict[str, Any], min_id: int) -> dict[str, Any]:
        with self._lock:
            existing = self._read_file()
            new_id = max([min_id - 1, *(int(r["item_id"]) for r in existing)]) + 1
            full = {**record, "item_id": new_id}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            durable_append(self.path, json.dumps(full) + "\n")
            return full

    def _read_file(self) -> list[dict[str, Any]]:
        return [r for r in read_json_lines(self.path) if "item_id" in r]

    async def all(self) -> list[dict[str, Any]]:
        """Every stored record, ordered by item id."""
        if self.guard is not None:
            raw = await self.guard.run(lambda r: r.hgetall(self.hash_key))
            records = [json.loads(v) for v in raw.values()]
        else:
            records = await asyncio.to_thread(self._read_file)
        return sorted(records, key=lambda r: int(r["item_id"]))

    async def get(self, item_id: int) -> dict[str, Any] | None:
        """One record, or None."""
        if self.guard is not None:
            raw = await self.guard.run(lambda r: r.hget(self.hash_key, str(item_id)))
            return json.loads(raw) if raw else None
        for rec in await asyncio.to_thread(self._read_file):
            if int(rec["item_id"]) == item_id:
                return rec
        return None
