"""Export stored feedback events to parquet for the next training run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pyarrow as pa

from shared.contracts.errors import DataError, DependencyUnavailableError
from shared.contracts.ids import ID_RULE, is_valid_id
from shared.stores.events import EventLog
from shared.stores.redis_conn import RedisGuard, RedisUnavailable

COLUMNS = ("event_id", "user_id", "item_id", "type", "rating", "timestamp")
_ID_COLUMNS = ("user_id", "item_id")
SCHEMA = pa.schema([
    ("event_id", pa.string()), ("user_id", pa.string()), ("item_id", pa.string()),
    ("type", pa.string()), ("rating", pa.float32()), ("timestamp", pa.int64()),
])
"""The export's column types (fixed, so an empty export has them too)."""


async def _collect(redis_url: str | None, state_dir: str, prefix: str) -> list[dict[str, str]]:
    guard = RedisGuard(redis_url, timeout_s=5.0) if redis_url else None
    try:
        log = EventLog(guard, state_dir, prefix=prefix)
        rows: dict[str, dict[str, str]] = {}  # one per event, keyed by its first id
        async for ev in log.iter_events():
            sid = ev.get("spool_id") or (ev["event_id"] if ev["event_id"].startswith("f") else "")
            dedupe = sid or ev.get("event_key") or ev["event_id"]
            if dedupe in rows:  # copied twice, or an XADD that timed out and was spooled too
                if sid:
                    rows[dedupe]["event_id"] = sid
                continue
            # a spooled event keeps the id its client was given, not its copy's stream id
            rows[dedupe] = {**ev, "event_id": sid} if sid else ev
        return list(rows.values())
    except RedisUnavailable as exc:
        raise DependencyUnavailableError(
            f"Redis at {redis_url} did not answer ({exc}); start it or fix --redis-url / "
            "HYBRIDREC_REDIS_URL (leave both unset to export only the local spool in "
            f"{state_dir})",
            dependency="redis",
        ) from exc
    finally:
        if guard is not None:
            await guard.close()


def export_events(
    out: str | Path, *, redis_url: str | None, state_dir: str = "state", prefix: str = "hybridrec"
) -> int:
    """Write every stored event (stream and spool) to ``out`` as parquet; returns the count.

    Columns: event_id, user_id (string), item_id (string), type, rating (float32, NaN when
    absent), timestamp (int64 seconds) - the canonical interaction columns plus the
    event's id and type, so ``hybridrec train`` can read them back. Every event appears
    once, under the id its client was given (a spooled event's ``f...`` id even after it
    was copied into the stream, possibly more than once).

    Raises:
        DependencyUnavailableError: ``redis_url`` is set but Redis does not answer.
        DataError: A stored event lacks a valid user_id or item_id (an id of
            :mod:`shared.contracts.ids`; events stored before ids were strings hold integers,
            exported as their decimal text) or a numeric timestamp.
    """
    rows = asyncio.run(_collect(redis_url, state_dir, prefix))
    df = pd.DataFrame([{c: r.get(c, "") for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    for col in _ID_COLUMNS:
        df[col] = [str(v) for v in df[col].tolist()]
        _refuse_bad(df, col, ~df[col].map(is_valid_id), ID_RULE)
    values = pd.to_numeric(df["timestamp"], errors="coerce")
    _refuse_bad(df, "timestamp", values.isna(), "expected an integer")
    df["timestamp"] = values.astype("int64")
    # Empty strings (no rating: views and clicks) become NaN.
    df["rating"] = pd.to_numeric(df["rating"], errors="coerce").astype("float32")
    df["event_id"] = df["event_id"].astype(str)
    df["type"] = df["type"].astype(str)
    df = df[list(COLUMNS)]
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    df.to_parquet(tmp, index=False, schema=SCHEMA)
    tmp.replace(path)
    return len(df)


def _refuse_bad(df: pd.DataFrame, col: str, bad: pd.Series, expected: str) -> None:
    """Raise :class:`DataError` naming the first event whose ``col`` is ``bad``, if any."""
    if not bad.any():
        return
    first = int(bad.to_numpy().argmax())
    raise DataError(
        f"event {df['event_id'].iloc[first]} has {col}={df[col].iloc[first]!r}; "
        f"{expected} ({int(bad.sum())} such events). Remove or fix it in the "
        "stream/spool and export again"
    )
