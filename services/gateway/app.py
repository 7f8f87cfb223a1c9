"""The public gateway: ``create_app()`` builds the FastAPI app (nothing loads at import)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge

from services.gateway import status, ui
from services.gateway.admin import router as admin_router
from services.gateway.core import GatewayCore, PopularFallback
from services.gateway.reload import StackReload, load_popular, popular_reloader
from services.gateway.result_cache import ResultCache
from services.gateway.routes import router
from services.gateway.settings import GatewaySettings, get_settings
from services.gateway.warmup import Warmth, keep_warm
from shared.contracts.errors import HybridrecError
from shared.contracts.public_v1 import Health
from shared.serving.app_factory import create_app as create_base_app
from shared.serving.app_factory import ready_response, stop_task
from shared.serving.clients import RankingClient, RetrievalClient
from shared.serving.process_tuning import freeze_heap
from shared.serving.reload import reload_metrics
from shared.stores.events import EventLog
from shared.stores.redis_conn import RedisGuard
from shared.stores.user_state import UserStateStore

log = logging.getLogger("hybridrec.gateway")

DESCRIPTION = """\
hybridrec's public API: recommendations for known and anonymous users, similar
items, item lookup and search, feedback events and new items. Every list is
`items: [{item_id, ...}]`, best first; user and item ids are the dataset's own, as
strings of 1 to 128 characters from `A-Z a-z 0-9 . _ : @ -` (MovieLens movieId 296 is
`"296"`; requests may also send a whole number, read as its decimal text).

Recommendation answers are cached in Redis for `HYBRIDREC_RESULT_CACHE_TTL_S` seconds
(default 300) and served again until the user sends a feedback event or an item is
added, whichever comes first; the `X-Hybridrec-Cache` response header says `hit`,
`miss` or `off`, and a request with `Cache-Control: no-cache` is always computed.
"""
TAGS = [
    {"name": "recommendations", "description": "Ranked items for a user or a session."},
    {"name": "items", "description": "Catalogue lookup, search, similar items, new items."},
    {"name": "events", "description": "Feedback that updates recommendations at once."},
    {"name": "admin", "description": "Which bundle each service serves; hot reload (admin key)."},
]


#: Makes the gateway's retrieval and ranking clients from its settings.
ClientFactory = Callable[[GatewaySettings], tuple[RetrievalClient, RankingClient]]


def http_clients(settings: GatewaySettings) -> tuple[RetrievalClient, RankingClient]:
    """The HTTP clients of retrieval and ranking at their configured URLs (the split)."""
    return (
        RetrievalClient(
            "retrieval", settings.retrieval_url, timeout_s=settings.retrieval_timeout_s
        ),
        RankingClient("ranking", settings.ranking_url, timeout_s=settings.ranking_timeout_s),
    )


def create_app(
    settings: GatewaySettings | None = None, clients: ClientFactory = http_clients
) -> FastAPI:
    """The gateway app; models and clients are created in its lifespan.

    ``clients`` makes the retrieval and ranking clients: over HTTP by default; the
    one-process mode (:mod:`services.combined`) passes in-process ones.
    """
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        guard = (
            RedisGuard(settings.redis_url, timeout_s=settings.redis_timeout_s)
            if (settings.redis_url)
            else None
        )
        popular: PopularFallback | None = None
        popular_dir: Path | None = None
        try:
            popular, popular_dir = load_popular(settings.artifacts)
        except HybridrecError as exc:
            log.error("no popular fallback: %s", exc)
        retrieval, ranking = clients(settings)
        core = GatewayCore(
            retrieval=retrieval,
            ranking=ranking,
            events=EventLog(guard, settings.state_dir, prefix=settings.redis_prefix),
            redis=guard,
            popular=popular,
            n_candidates=settings.n_candidates,
            deadline_s=settings.deadline_s,
            retrieval_timeout_s=settings.retrieval_timeout_s,
            ranking_timeout_s=settings.ranking_timeout_s,
            max_in_flight=settings.max_in_flight,
            user_state=(
                UserStateStore(guard, prefix=settings.redis_prefix) if guard is not None else None
            ),
            result_cache=(
                ResultCache(guard, prefix=settings.redis_prefix, ttl_s=settings.result_cache_ttl_s)
                if guard is not None and settings.result_cache_ttl_s > 0
                else None
            ),
        )
        app.state.core = core
        reloader = popular_reloader(settings, core, reload_metrics(app))
        if popular is not None and popular_dir is not None:
            reloader.adopt(popular, popular.version, popular_dir)
        else:
            reloader.startup_failed()
        app.state.stack_reload = StackReload(
            settings, reloader, {"retrieval": core.retrieval, "ranking": core.ranking}
        )
        watcher = reloader.start_watching(settings.watch_latest_s)
        flusher = asyncio.create_task(core.feedback.flush_spool_forever())
        app.state.warmth = Warmth()
        warmer = asyncio.create_task(keep_warm(core, app.state.warmth))
        freeze_heap()
        try:
            yield
        finally:
            if watcher is not None:
                await stop_task(watcher)
            await stop_task(warmer)
            if flusher is not None:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
            await core.close()

    app = create_base_app(
        service="gateway",
        title="hybridrec gateway",
        description=DESCRIPTION,
        version="1.0.0",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        log_level=settings.log_level,
        openapi_tags=TAGS,
    )
    app.state.core = None
    app.state.warmth = None
    app.state.stack_reload = None
    app.state.api_keys = settings.key_set()
    app.state.admin_key = settings.admin_key
    app.state.result_cache_answers = Counter(
        "hybridrec_result_cache_answers",
        "Recommendation answers by result-cache outcome (hit, miss, off).",
        ["outcome"],
        registry=app.state.metrics_registry,
    )
    Gauge(
        "hybridrec_recommendations_in_flight",
        "Recommendations being computed now (the limit is HYBRIDREC_MAX_IN_FLIGHT; above "
        "it answers are popular items marked degraded: overload).",
        registry=app.state.metrics_registry,
    ).set_function(lambda: float(app.state.core.in_flight) if app.state.core else 0.0)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.include_router(router)
    app.include_router(admin_router)
    status.install(app)  # /v1/status, /v1/users/{user_id}/history
    ui.install(app)  # the dashboard at /ui

    @app.get(
        "/health/ready",
        tags=["ops"],
        response_model=Health,
        summary="Readiness",
        operation_id="gateway_health_ready",
        responses={503: {"model": Health, "description": "Not ready; checks say why."}},
    )
    async def health_ready(request: Request) -> JSONResponse:
        """Ready when retrieval answers and a warm-up recommendation went through it;
        ranking and Redis being down only degrade answers."""
        core: GatewayCore | None = request.app.state.core
        if core is None:
            return ready_response("gateway", None, {"startup": "starting"})
        retrieval_ok, ranking_ok = await asyncio.gather(
            core.retrieval.ready(), core.ranking.ready()
        )
        checks = {
            "retrieval": "ok" if retrieval_ok else "down: retrieval is not ready",
            "ranking": "ok" if ranking_ok else "ok (degraded: ranking down, retrieval order used)",
            "warm_up": request.app.state.warmth.check(),
            "popular_fallback": "ok"
            if core.popular
            else "missing: no bundle at HYBRIDREC_ARTIFACTS",
        }
        if core.redis is not None:
            checks["redis"] = (
                "ok" if await core.redis.ping() else "ok (degraded: Redis down, events spooled)"
            )
        version = core.popular.version if core.popular else None
        return ready_response("gateway", version, checks)

    return app
