"""Export stored feedback events to parquet for the next training run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd

from shared.stores.events import EventLog
from shared.stores.redis_conn import RedisGuard

COLUMNS = ("event_id", "user_id", "item_id", "type", "rating", "timestamp")


async def _collect(redis_url: str | None, state_dir: str, prefix: str) -> list[dict[str, str]]:
    guard = RedisGuard(redis_url, timeout_s=5.0) if redis_url else None
    try:
        log = EventLog(guard, state_dir, prefix=prefix)
        seen_spool: set[str] = set()
        rows = []
        async for ev in log.iter_events():
            sid = ev.get("spool_id") or (ev["event_id"] if ev["event_id"].startswith("f") else "")
            if sid:
                if sid in seen_spool:
                    continue  # copied from the spool twice (crash between copy and truncate)
                seen_spool.add(sid)
            rows.append(ev)
        return rows
    finally:
        if guard is not None:
            await guard.close()


def export_events(
    out: str | Path, *, redis_url: str | None, state_dir: str = "state", prefix: str = "hybridrec"
) -> int:
    """Write every stored event (stream and spool) to ``out`` as parquet; returns the count.

    Columns: event_id, user_id (int64), item_id (int64), type, rating (float, NaN when
    absent), timestamp (int64 seconds) - the canonical interaction columns plus the
    event's id and type, so ``hybridrec train`` can read them back.
    """
    rows = asyncio.run(_collect(redis_url, state_dir, prefix))
    df = pd.DataFrame([{c: r.get(c, "") for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    df["user_id"] = pd.to_numeric(df["user_id"]).astype("int64")
    df["item_id"] = pd.to_numeric(df["item_id"]).astype("int64")
    df["rating"] = pd.to_numeric(df["rating"].replace("", None), errors="coerce").astype("float32")
    df["timestamp"] = pd.to_numeric(df["timestamp"]).astype("int64")
    df["event_id"] = df["event_id"].astype(str)
    df["type"] = df["type"].astype(str)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return len(df)
