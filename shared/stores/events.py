"""The durable feedback log: a Redis Stream, or an fsync'd JSON-lines file.

``append`` returns only after the event is stored: with Redis, once ``XADD``
answered (run Redis with append-only persistence, ``appendfsync always``, for
durability across a crash); without Redis, or while Redis is down, once the line
is written and ``fsync``'d to ``<state_dir>/events.jsonl`` (the spool). Spooled
events are moved into the stream when Redis answers again, so nothing acknowledged
is lost either way. Both are read back by ``hybridrec events export``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from shared.contracts.bundle_writer import fsync_dir
from shared.stores.redis_conn import RedisGuard, RedisUnavailable, key

EVENT_FIELDS = ("user_id", "item_id", "type", "rating", "timestamp")


def durable_append(path: Path, line: str) -> None:
    """Append one ``\\n``-terminated line to ``path`` and ``fsync`` it.

    If the file ends in a torn line (a crash in the middle of an earlier write),
    a newline is written first, so the torn fragment stays a line of its own that
    readers skip, instead of swallowing this (acknowledged) line. A newly created
    file also has its directory entry fsync'd.
    """
    data = line.encode("utf-8")
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of ``path`` (torn or corrupt lines are skipped)."""
    if not path.exists():
        return []
    out = []
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # a torn last line: the write never completed
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


class FileEventLog:
    """Append-only JSON lines with fsync after every event."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = 0

    def new_id(self) -> str:
        """A fresh event id, ``f<ns>-<pid>-<seq>`` (unique across restarts and processes)."""
        with self._lock:
            self._seq += 1
            return f"f{time.time_ns()}-{os.getpid()}-{self._seq}"

    def append_sync(self, event: dict[str, Any], event_id: str | None = None) -> str:
        """Write one event durably; returns its id (``event_id``, or a :meth:`new_id`)."""
        event_id = event_id or self.new_id()
        with self._lock:
            line = json.dumps({"event_id": event_id, **event}, separators=(",", ":")) + "\n"
            durable_append(self.path, line)
        return event_id

    def read_all(self) -> list[dict[str, Any]]:
        """Every complete line (a torn last line from a crash is ignored)."""
        return read_json_lines(self.path)

    def remove_head(self, event_ids: list[str]) -> bool:
        """Drop the first events of the file if they are exactly ``event_ids``.

        Events appended after those (while they were being copied) are kept: the
        rest is written to a temporary file, fsync'd and renamed over the spool.

        Returns:
            False (and nothing changed) when the file no longer starts with them.
        """
        with self._lock:
            events = self.read_all()
            n = len(event_ids)
            if [str(e.get("event_id", "")) for e in events[:n]] != list(event_ids):
                return False
            rest = events[n:]
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in rest)
                view = memoryview(data.encode("utf-8"))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
            return True


class EventLog:
    """Redis Stream with a local fsync'd spool for when Redis is down (or absent)."""

    def __init__(
        self, guard: RedisGuard | None, state_dir: str | Path, *, prefix: str = "hybridrec"
    ):
        self.guard = guard
        self.stream = key(prefix, "events")
        self.spool = FileEventLog(Path(state_dir) / "events.jsonl")

    async def append(self, event: dict[str, Any]) -> tuple[str, bool]:
        """Store ``event`` durably; returns ``(event_id, spooled)``.

        The id the event would have in the spool is chosen first and written with the
        ``XADD`` as ``event_key``: an ``XADD`` that timed out may still be applied after
        the event was spooled, and its copy is then recognised by that key.
        """
        fields = {k: "" if event.get(k) is None else str(event[k]) for k in EVENT_FIELDS}
        key_ = self.spool.new_id()
        if self.guard is not None:
            keyed = {**fields, "event_key": key_}
            try:
                eid = await self.guard.run(lambda r: r.xadd(self.stream, keyed))  # type: ignore[arg-type]
                return (eid.decode() if isinstance(eid, bytes) else str(eid)), False
            except RedisUnavailable:
                pass
        eid = await asyncio.to_thread(self.spool.append_sync, fields, key_)
        return eid, self.guard is not None

    async def flush_spool(self, batch: int = 500) -> int:
        """:meth:`drain_spool`, returning how many events were moved."""
        return len(await self.drain_spool(batch))

    async def drain_spool(self, batch: int = 500) -> list[dict[str, Any]]:
        """Copy spooled events into the stream once Redis answers, then drop them from the spool.

        Each copy carries ``spool_id`` (the spooled event's id, the one its client
        got). At-least-once: a crash or a Redis failure between the copy and the
        removal leaves duplicates (same ``spool_id``), never a gap, and so does an
        ``XADD`` that timed out but was applied (its ``event_key`` is that id); the
        export keeps one copy. Events spooled while the copy ran stay for the next call.

        Returns:
            The events moved, oldest first (none when Redis is down or the spool is empty).
        """
        if self.guard is None or not self.spool.path.exists():
            return []
        if not await self.guard.ping():
            return []
        events = await asyncio.to_thread(self.spool.read_all)
        if not events:
            return []
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]

            async def _copy(r, chunk=chunk):  # type: ignore[no-untyped-def]
                async with r.pipeline(transaction=False) as pipe:
                    for ev in chunk:
                        fields = {k: _str_or_empty(ev.get(k)) for k in EVENT_FIELDS}
                        fields["spool_id"] = _str_or_empty(ev.get("event_id"))
                        pipe.xadd(self.stream, fields)
                    return await pipe.execute()

            try:
                await self.guard.run(_copy)
            except RedisUnavailable:
                return []
        ids = [_str_or_empty(ev.get("event_id")) for ev in events]
        removed = await asyncio.to_thread(self.spool.remove_head, ids)
        return events if removed else []

    async def iter_events(self, batch: int = 10_000) -> AsyncIterator[dict[str, Any]]:
        """Every stored event: the stream first, then anything still in the spool."""
        if self.guard is not None:
            last = "-"
            while True:

                async def _page(r: Any, start: str = last) -> Any:
                    return await r.xrange(self.stream, min=start, max="+", count=batch)

                rows = await self.guard.run(_page)
                if not rows:
                    break
                for eid, fields in rows:
                    eid_s = eid.decode() if isinstance(eid, bytes) else str(eid)
                    yield {"event_id": eid_s, **{_s(k): _s(v) for k, v in fields.items()}}
                last_id = rows[-1][0]
                last = "(" + (last_id.decode() if isinstance(last_id, bytes) else str(last_id))
                if len(rows) < batch:
                    break
        for ev in self.spool.read_all():
            yield ev


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _str_or_empty(v: Any) -> str:
    return "" if v is None else str(v)
