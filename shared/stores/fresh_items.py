"""Items added at run time, kept durably until the next index build folds them in.

Annoy indexes are immutable, so new items live in this store and are searched
exactly beside the index. Records are JSON: the item's fields plus its content
(BERT) vector and item-tower vector, base64-encoded float32. Backends: a Redis
hash ``{prefix}:fresh:items`` (field = the item id, claimed with ``HSETNX`` so two adds
never share an id), or an fsync'd JSON-lines file ``<state_dir>/fresh_items.jsonl``.

Ids are strings (:mod:`shared.contracts.ids`): the caller's own, or, when it sends none,
the decimal text of a counter (``INCR {prefix}:fresh:next_id``, raised to at least the
catalogue's next decimal id), skipping ids the catalogue already holds.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import ConflictError
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
    """Durable store of run-time items; ``add`` keeps the caller's id or assigns one."""

    def __init__(
        self, guard: RedisGuard | None, state_dir: str | Path, *, prefix: str = "hybridrec"
    ):
        self.guard = guard
        self.hash_key = key(prefix, "fresh", "items")
        self.id_key = key(prefix, "fresh", "next_id")
        self.path = Path(state_dir) / "fresh_items.jsonl"
        self.patch_key = key(prefix, "items", "patches")
        self.patch_path = Path(state_dir) / "item_patches.jsonl"
        self._lock = threading.Lock()

    async def add(
        self, record: dict[str, Any], first_id: int, taken: Callable[[str], bool]
    ) -> dict[str, Any]:
        """Store ``record`` and return it with its ``item_id``.

        Args:
            record: The item's fields; its ``item_id`` (a string) is kept when set.
            first_id: The smallest number an assigned id may be (the catalogue's next).
            taken: Whether an id belongs to the catalogue already.

        Raises:
            ConflictError: The record's own id is in the catalogue or was added before.
            RedisUnavailable: Redis is configured but down (the caller answers 503).
        """
        own = record.get("item_id")
        if own is not None and taken(str(own)):
            raise _taken(str(own))
        record = {**record, "added_at": time.time()}  # the order all() lists them in
        if self.guard is not None:
            return await self._add_redis(record, first_id, taken)
        return await asyncio.to_thread(self._add_file, record, first_id, taken)

    async def _add_redis(
        self, record: dict[str, Any], first_id: int, taken: Callable[[str], bool]
    ) -> dict[str, Any]:
        assert self.guard is not None
        own = record.get("item_id")
        while True:
            if own is not None:
                new_id = str(own)
            else:
                n = await self.guard.run(
                    lambda r: r.eval(_NEXT_ID_SCRIPT, 1, self.id_key, str(int(first_id)))
                )
                new_id = str(int(n))
                if taken(new_id):
                    continue
            full = {**record, "item_id": new_id}
            if await self._claim(new_id, json.dumps(full)):
                return full
            if own is not None:
                raise _taken(new_id)

    async def _claim(self, item_id: str, value: str) -> bool:
        """Store ``value`` under ``item_id`` unless the id is taken (HSETNX)."""
        assert self.guard is not None
        return bool(await self.guard.run(lambda r: r.hsetnx(self.hash_key, item_id, value)))

    def _add_file(
        self, record: dict[str, Any], first_id: int, taken: Callable[[str], bool]
    ) -> dict[str, Any]:
        with self._lock:
            existing = {str(r["item_id"]) for r in self._read_file()}
            own = record.get("item_id")
            if own is not None:
                new_id = str(own)
                if new_id in existing:
                    raise _taken(new_id)
            else:  # above every id assigned before, as the Redis counter does
                n = max([first_id, *(int(i) + 1 for i in existing if i.isdigit())])
                while taken(str(n)):
                    n += 1
                new_id = str(n)
            full = {**record, "item_id": new_id}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            durable_append(self.path, json.dumps(full) + "\n")
            return full

    def _read_file(self) -> list[dict[str, Any]]:
        return [r for r in read_json_lines(self.path) if "item_id" in r]

    async def all(self) -> list[dict[str, Any]]:
        """Every stored record (ids as strings), in the order they were added."""
        if self.guard is not None:
            raw = await self.guard.run(lambda r: r.hgetall(self.hash_key))
            records = [json.loads(v) for v in raw.values()]
            records.sort(key=lambda r: float(r.get("added_at", 0)))
        else:
            records = await asyncio.to_thread(self._read_file)
        return [{**r, "item_id": str(r["item_id"])} for r in records]

    async def get(self, item_id: str) -> dict[str, Any] | None:
        """One record, or None."""
        if self.guard is not None:
            raw = await self.guard.run(lambda r: r.hget(self.hash_key, str(item_id)))
            return {**json.loads(raw), "item_id": str(item_id)} if raw else None
        for rec in await asyncio.to_thread(self._read_file):
            if str(rec["item_id"]) == str(item_id):
                return {**rec, "item_id": str(item_id)}
        return None


    async def patch(self, item_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """Record a change of an item's attributes or availability (``PATCH /v1/items``),
        merged atomically into the item's earlier changes; returns the merged change.

        ``change`` is ``{"attributes": {name: value}, "available": bool}`` (either part
        optional); an attribute set to None is recorded as None (missing).

        Raises:
            RedisUnavailable: Redis is configured but down (the caller answers 503).
        """
        change = {**change, "updated_at": time.time()}
        if self.guard is not None:
            raw = await self.guard.run(
                lambda r: r.eval(_PATCH_SCRIPT, 1, self.patch_key, item_id, json.dumps(change))
            )
            return _lists(json.loads(raw))
        return await asyncio.to_thread(self._patch_file, item_id, change)

    def _patch_file(self, item_id: str, change: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.patch_path.parent.mkdir(parents=True, exist_ok=True)
            durable_append(self.patch_path, json.dumps({"item_id": item_id, **change}) + "\n")
            return self._patches_file().get(item_id, {})

    def _patches_file(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for row in read_json_lines(self.patch_path):
            iid = str(row.pop("item_id", ""))
            if iid:
                merged[iid] = merge_change(merged.get(iid, {}), row)
        return merged

    async def patches(self) -> dict[str, dict[str, Any]]:
        """Every item's merged change, by item id."""
        if self.guard is not None:
            raw = await self.guard.run(lambda r: r.hgetall(self.patch_key))
            return {
                k.decode() if isinstance(k, bytes) else str(k): _lists(json.loads(v))
                for k, v in raw.items()
            }
        return await asyncio.to_thread(self._patches_file)


def _lists(change: dict[str, Any]) -> dict[str, Any]:
    """Redis' cjson writes an empty list as ``{}``: read it back as ``[]``."""
    attrs = change.get("attributes")
    if isinstance(attrs, dict):
        change["attributes"] = {k: [] if v == {} else v for k, v in attrs.items()}
    return change


def merge_change(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A later change over an earlier one: attributes merged by name, the rest replaced."""
    out = {**old, **{k: v for k, v in new.items() if k != "attributes"}}
    if "attributes" in new or "attributes" in old:
        out["attributes"] = {**old.get("attributes", {}), **new.get("attributes", {})}
    return out


# Atomically merge a change into the item's stored change (attributes by name).
_PATCH_SCRIPT = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local new = cjson.decode(ARGV[2])
local out = {}
if old then out = cjson.decode(old) end
local attrs = out['attributes'] or {}
if new['attributes'] then
  for k, v in pairs(new['attributes']) do attrs[k] = v end
end
for k, v in pairs(new) do
  if k ~= 'attributes' then out[k] = v end
end
if next(attrs) ~= nil then out['attributes'] = attrs end
local text = cjson.encode(out)
redis.call('HSET', KEYS[1], ARGV[1], text)
return text
"""


def _taken(item_id: str) -> ConflictError:
    return ConflictError(
        f"item {item_id!r} exists already; send another item_id, or none to have one "
        "assigned"
    )
