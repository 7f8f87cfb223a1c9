"""Read-only public views: ``GET /v1/status`` and ``GET /v1/users/{user_id}/history``.

The dashboard (``/ui``) is built on these and the rest of ``/v1``. The calls to the
other services (their readiness, the user's history and item metadata) live in
:func:`service_state` and :func:`history_from_services`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam

from services.gateway.core import GatewayCore
from services.gateway.deps import ApiKeyDep, CoreDep
from services.gateway.traffic import TrafficWindow, install_degraded_counter
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import read_manifest
from shared.contracts.errors import NotFoundError
from shared.contracts.internal_v1 import CandidatesRequest
from shared.contracts.public_v1 import UserId
from shared.contracts.status_v1 import (
    BundleSummary,
    HistoryEntry,
    ServiceState,
    Status,
    UserHistory,
)
from shared.serving.app_factory import ERROR_RESPONSES, request_id_of
from shared.serving.clients import ServiceClient
from shared.stores.redis_conn import RedisUnavailable

log = logging.getLogger("hybridrec.gateway")
#: Events of the stream scanned for one user's history (the newest ones).
EVENT_SCAN = 10_000
METADATA_CONCURRENCY = 16

router = APIRouter(
    prefix="/v1",
    dependencies=[ApiKeyDep],
    responses={
        **ERROR_RESPONSES,
        401: {"model": ERROR_RESPONSES[404]["model"], "description": "Missing or unknown API key."},
    },
)


def install(app: FastAPI) -> None:
    """Add the status routes and the degraded-answer counter to the gateway app."""
    install_degraded_counter(app)
    app.include_router(router)


# --------------------------------------------------------------------------- /v1/status
@router.get(
    "/status",
    response_model=Status,
    tags=["ops"],
    summary="Services, live bundle and recent traffic",
    operation_id="get_status",
)
async def status(request: Request, core: CoreDep) -> Status:
    """Each service's readiness, the live bundle (version, training time, catalogue and
    user counts, evaluation figures) and this gateway's traffic over the last minute."""
    app = request.app
    retrieval, ranking = await asyncio.gather(
        service_state(core.retrieval), service_state(core.ranking)
    )
    gateway = ServiceState(
        service="gateway",
        status="ok" if retrieval.status == "ok" else "not_ready",
        model_version=core.popular.version if core.popular else None,
        checks={
            "retrieval": retrieval.status,
            "ranking": ranking.status,
            "redis": "not configured"
            if core.redis is None
            else ("ok" if core.redis.available else "down (events spooled)"),
        },
    )
    window: TrafficWindow | None = getattr(app.state, "traffic_window", None)
    if window is None:
        window = app.state.traffic_window = TrafficWindow(app.state.metrics_registry)
    return Status(
        services=[gateway, retrieval, ranking],
        bundle=_bundle_summary(app),
        traffic=window.stats(),
        request_id=request_id_of(request),
    )


async def service_state(client: ServiceClient) -> ServiceState:
    """A dependency's ``/health/ready`` (internal call; down when it does not answer)."""
    try:
        resp = await client.health(timeout_s=1.0)
        body = json.loads(resp.body)
    except Exception as exc:  # whatever failed, the service is down for us
        return ServiceState(
            service=client.name, status="down", checks={"error": type(exc).__name__}
        )
    return ServiceState(
        service=client.name,
        status="ok" if resp.status == 200 else "not_ready",
        model_version=body.get("model_version"),
        checks={str(k): str(v) for k, v in (body.get("checks") or {}).items()},
    )


def _bundle_summary(app: FastAPI) -> BundleSummary | None:
    stack = getattr(app.state, "stack_reload", None)
    active = stack.reloader.active if stack is not None else None
    if active is None:
        return None
    cached = getattr(app.state, "bundle_summary", None)
    if cached is not None and cached.version == active.version:
        return cached
    summary = summarise_manifest(read_manifest(Path(active.path)), active.loaded_at)
    summary.example_user_ids = _example_users(Path(active.path))
    app.state.bundle_summary = summary
    return summary


def _example_users(bundle_dir: Path, n: int = 5) -> list[str]:
    """The first few user ids of the bundle's users table (only that column is read)."""
    import pyarrow as pa  # only when a bundle is summarised: not at import
    import pyarrow.parquet as pq

    try:
        ids = pq.read_table(bundle_dir / L.USERS, columns=["user_id"]).column(0)
        return [str(u) for u in ids.slice(0, n).to_pylist()]
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        log.warning("no example users from %s: %s", bundle_dir, exc)
        return []


def summarise_manifest(manifest: dict[str, Any], loaded_at: datetime | None) -> BundleSummary:
    """The dashboard's view of a bundle manifest."""
    components = manifest.get("components") or {}
    dataset = manifest.get("dataset") or {}
    return BundleSummary(
        version=str(manifest["version"]),
        trained_at=manifest.get("created_at"),
        loaded_at=loaded_at,
        dataset=dataset.get("name"),
        n_items=components.get("n_items", dataset.get("n_items")),
        n_users=components.get("n_users", dataset.get("n_users")),
        sources=list(components.get("sources") or []),
        metrics=_flat_numbers(manifest.get("metrics") or {}),
    )


def _flat_numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[name] = float(value)
        elif isinstance(value, dict):
            out.update(_flat_numbers(value, f"{name}."))
    return out


# --------------------------------------------------------------------------- history
@router.get(
    "/users/{user_id}/history",
    response_model=UserHistory,
    tags=["events"],
    summary="A user's history, newest first",
    operation_id="get_user_history",
)
async def user_history(
    request: Request,
    core: CoreDep,
    user_id: Annotated[UserId, PathParam()],
    limit: Annotated[int, Query(ge=1, le=200, description="How many entries.")] = 50,
) -> UserHistory:
    """The user's feedback events (with type, rating and time; the newest
    10,000 events of the stream are searched), then the rest of the history retrieval
    keeps for them (training interactions, most recent first). 404 for a user with
    neither."""
    entries, total = await history_from_services(core, user_id, limit, request_id_of(request))
    return UserHistory(
        user_id=user_id, items=entries, total=total, request_id=request_id_of(request)
    )


async def history_from_services(
    core: GatewayCore, user_id: str, limit: int, request_id: str | None
) -> tuple[list[HistoryEntry], int]:
    """Internal calls: the user's events (Redis stream / spool), retrieval's history of
    the user (``/v1/candidates`` answers it), then each shown item's metadata."""
    events = await _user_events(core, user_id)
    try:
        cands = await core.retrieval.candidates(
            CandidatesRequest(user_id=user_id, k=1),
            timeout_s=core.retrieval_timeout_s,
            request_id=request_id,
        )
        known = cands.history
    except NotFoundError:
        if not events:
            raise NotFoundError(
                f"user {user_id!r} has no history: not in the bundle's training data and no "
                "feedback events; send one with POST /v1/users/{user_id}/events"
            ) from None
        known = []
    rows: list[dict[str, Any]] = [{**ev, "source": "event"} for ev in events]
    in_events = {ev["item_id"] for ev in events}
    rows += [
        {"item_id": iid, "source": "history"} for iid in reversed(known) if iid not in in_events
    ]
    shown = rows[:limit]
    meta = await _metadata(core, [r["item_id"] for r in shown], request_id)
    entries = [
        HistoryEntry(**r, **meta.get(r["item_id"], {"title": f"item {r['item_id']}"}))
        for r in shown
    ]
    return entries, len(rows)


async def _user_events(core: GatewayCore, user_id: str) -> list[dict[str, Any]]:
    """The user's events in arrival order, newest first (the spool's, then the newest
    EVENT_SCAN of the stream)."""
    log_ = core.events
    raw: list[dict[str, Any]] = []
    if log_.guard is not None:
        try:
            rows = await log_.guard.run(
                lambda r: r.xrevrange(log_.stream, max="+", min="-", count=EVENT_SCAN)
            )
        except RedisUnavailable:
            rows = []
        for _eid, fields in rows or []:
            raw.append({_s(k): _s(v) for k, v in (fields or {}).items()})
    spooled = await asyncio.to_thread(log_.spool.read_all)
    raw = [*reversed(spooled), *raw]  # the spool holds the newest (Redis was down)
    uid = str(user_id)
    out = []
    for ev in raw:
        if str(ev.get("user_id")) != uid:
            continue
        try:
            item = str(ev["item_id"])
            rating = float(ev["rating"]) if ev.get("rating") not in (None, "") else None
            ts = int(float(ev["timestamp"])) if ev.get("timestamp") not in (None, "") else None
        except (KeyError, TypeError, ValueError):
            continue
        etype = ev.get("type") if ev.get("type") in ("rating", "view", "click") else None
        out.append({"item_id": item, "type": etype, "rating": rating, "timestamp": ts})
    return out


async def _metadata(
    core: GatewayCore, item_ids: list[str], request_id: str | None
) -> dict[str, dict[str, Any]]:
    """Title, year and genres of each item (the gateway's item lookup)."""
    gate = asyncio.Semaphore(METADATA_CONCURRENCY)

    async def one(iid: str) -> tuple[str, dict[str, Any] | None]:
        async with gate:
            try:
                item = await core.items.item(iid, request_id=request_id)
            except NotFoundError:
                return iid, None
        return iid, {"title": item.title, "year": item.year, "genres": list(item.genres)}

    found = await asyncio.gather(*(one(i) for i in dict.fromkeys(item_ids)))
    return {iid: m for iid, m in found if m is not None}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
