"""Bulk ingestion: ``POST /v1/items:batch`` and ``POST /v1/events:batch``.

The body is a JSON array of objects or NDJSON (one JSON object a line; blank lines are
skipped); a body that is neither, is empty or holds too many rows is refused as a whole
(422, or 413 over the body limit) before anything is stored. Each row then goes through
the single-row path (``POST /v1/items``, ``POST /v1/users/{user_id}/events``: the same
validation, storage and side effects) and gets its own status: 201/202 stored, 4xx refused
with the reason, 503 not stored (retry that row). A row is stored whole or not at all;
rows are independent, so a refused row never undoes another.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from services.gateway.core import GatewayCore
from shared.contracts.errors import HybridrecError, ValidationError
from shared.contracts.events_v1 import EventIn
from shared.contracts.ids import UserId
from shared.contracts.items_v1 import MAX_EVENT_ROWS, MAX_ITEM_ROWS, BatchResult, RowResult
from shared.contracts.public_v1 import (
    NewItem,
)

#: Rows sent to retrieval at once (each new item is embedded there).
ITEM_CONCURRENCY = 4
_USER_ID: TypeAdapter[str] = TypeAdapter(UserId)


def parse_rows(raw: bytes, limit: int, what: str) -> list[Any]:
    """The rows of a JSON-array or NDJSON body.

    Raises:
        ValidationError: Not JSON nor NDJSON (naming the first bad line), empty, or more
            than ``limit`` rows (422: nothing was stored).
    """
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        raise ValidationError(f"the body is empty; send a JSON array of {what} or NDJSON")
    rows: list[Any]
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"the body is not a valid JSON array ({exc.msg} at line {exc.lineno}, column "
                f"{exc.colno}); nothing was stored"
            ) from exc
        rows = parsed if isinstance(parsed, list) else [parsed]
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    f"line {n} of the NDJSON body is not JSON ({exc.msg}); send one JSON "
                    f"object per line or a JSON array; nothing was stored"
                ) from exc
    if not rows:
        raise ValidationError(f"the body holds no {what}")
    if len(rows) > limit:
        raise ValidationError(
            f"the body holds {len(rows)} {what}; at most {limit} per batch: split it; "
            "nothing was stored"
        )
    return rows


def _invalid(row: int, exc: PydanticValidationError) -> RowResult:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "row"
    return RowResult(row=row, status=422, error=f"{where}: {first['msg']}")


def _failed(row: int, exc: HybridrecError, **ids: Any) -> RowResult:
    return RowResult(row=row, status=exc.http_status, error=str(exc), **ids)


def _result(rows: list[RowResult], request_id: str | None) -> BatchResult:
    ok = sum(1 for r in rows if r.status < 300)
    return BatchResult(accepted=ok, rejected=len(rows) - ok, rows=rows, request_id=request_id)


async def items_batch(core: GatewayCore, raw: bytes, request_id: str | None) -> BatchResult:
    """Add every valid item of the body (``POST /v1/items`` per row)."""
    rows = parse_rows(raw, MAX_ITEM_ROWS, "items")
    results: list[RowResult | None] = [None] * len(rows)
    valid: list[tuple[int, NewItem]] = []
    for j, row in enumerate(rows):
        try:
            valid.append((j, NewItem.model_validate(row)))
        except PydanticValidationError as exc:
            results[j] = _invalid(j, exc)
    gate = asyncio.Semaphore(ITEM_CONCURRENCY)

    async def add(j: int, item: NewItem) -> None:
        async with gate:
            try:
                created = await core.items.add(item, request_id=request_id, notify=False)
                results[j] = RowResult(row=j, status=201, item_id=created.item_id)
            except HybridrecError as exc:
                results[j] = _failed(j, exc, item_id=item.item_id)

    await asyncio.gather(*(add(j, item) for j, item in valid))
    if any(r is not None and r.status == 201 for r in results):
        await core.catalogue_changed()
    return _result([r for r in results if r is not None], request_id)


async def events_batch(core: GatewayCore, raw: bytes, request_id: str | None) -> BatchResult:
    """Record every valid event of the body (the single-event path, in body order)."""
    rows = parse_rows(raw, MAX_EVENT_ROWS, "events")
    out: list[RowResult] = []
    for j, row in enumerate(rows):
        if not isinstance(row, dict):
            out.append(RowResult(row=j, status=422, error="a row must be a JSON object"))
            continue
        fields = dict(row)
        if "user_id" not in fields:
            out.append(RowResult(row=j, status=422, error="user_id: Field required"))
            continue
        try:
            user_id = _USER_ID.validate_python(fields.pop("user_id"))
        except PydanticValidationError as exc:
            out.append(RowResult(row=j, status=422, error=f"user_id: {exc.errors()[0]['msg']}"))
            continue
        try:
            event = EventIn.model_validate(fields)
        except PydanticValidationError as exc:
            out.append(_invalid(j, exc))
            continue
        try:
            accepted = await core.feedback.record_event(user_id, event, request_id)
        except HybridrecError as exc:
            out.append(_failed(j, exc, item_id=event.item_id))
            continue
        out.append(RowResult(row=j, status=202, item_id=event.item_id,
                             event_id=accepted.event_id))
    return _result(out, request_id)
