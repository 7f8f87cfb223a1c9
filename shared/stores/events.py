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

from shared.stores.redis_conn import RedisGuard, RedisUnavailable, key

EVENT_FIELDS = ("user_id", "item_id", "type", "rating", "timestamp")


class FileEventLog:
    """Append-only JSON lines with fsync after every event."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = 0

    def append_sync(self, event: dict[str, Any]) -> str:
        """Write one event durably; returns its id."""
        with self._lock:
            self._seq += 1
            event_id = f"f{time.time_ns()}-{self._seq}"
            line = json.dumps({"event_id": event_id, **event}, separators=(",", ":")) + "\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return event_id

    def read_all(self) -> list[dict[str, Any]]:
        """Every complete line (a torn last line from a crash is ignored)."""
        if not self.path.exists():
            return []
        out = []
        with self.path.open("r", encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def truncate_if_unchanged(self, n_lines: int) -> bool:
        """Empty the file if it still holds exactly ``n_lines`` complete events."""
        with self._lock:
            if len(self.read_all()) != n_lines:
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
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
        """Store ``event`` durably; returns ``(event_id, spooled)``."""
        fields = {k: "" if event.get(k) is None else str(event[k]) for k in EVENT_FIELDS}
        if self.guard is not None:
            try:
                eid = await self.guard.run(lambda r: r.xadd(self.stream, fields))  # type: ignore[arg-type]
                return (eid.decode() if isinstance(eid, bytes) else str(eid)), False
            except RedisUnavailable:
                pass
        eid = await asyncio.to_thread(self.spool.append_sync, fields)
        return eid, self.guard is not None

    async def flush_spool(self) -> int:
        """Copy spooled events into the stream once Redis answers, then empty the spool.

        At-least-once: a crash between the copy and the truncation leaves duplicates
        (same ``spool_id``), never a gap; the export drops the duplicates.
        """
        if self.guard is None or not self.spool.path.exists():
            return 0
        if not await self.guard.ping():
            return 0
        events = await asyncio.to_thread(self.spool.read_all)
        if not events:
            return 0
        for ev in events:
            fields = {k: ev.get(k, "") for k in EVENT_FIELDS}
            fields["spool_id"] = ev.get("event_id", "")
            try:
                await self.guard.run(lambda r, f=fields: r.xadd(self.stream, f))  # type: ignore[misc]
            except RedisUnavailable:
                return 0
        truncated = await asyncio.to_thread(self.spool.truncate_if_unchanged, len(events))
        return len(events) if truncated else 0

    async def iter_events(self, batch: int = 10_000) -> AsyncIterator[dict[str, Any]]:
        """Every stored event: the stream first, then anything still in the spool."""
        if self.guard is not None:
            last = "-"
            while True:
                rows = await self.guard.run(
                    lambda r, s=last: r.xrange(self.stream, min=s, max="+", count=batch)
                )
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
