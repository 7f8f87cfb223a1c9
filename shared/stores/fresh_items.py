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
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from shared.stores.redis_conn import RedisGuard, key


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
            await self.guard.run(lambda r: r.set(self.id_key, min_id - 1, nx=True))
            new_id = int(await self.guard.run(lambda r: r.incr(self.id_key)))
            if new_id < min_id:  # catalogue grew past the counter (a newer bundle)
                await self.guard.run(lambda r: r.set(self.id_key, min_id))
                new_id = min_id
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
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, (json.dumps(full) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            return full

    def _read_file(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.endswith("\n"):
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
        return out

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
