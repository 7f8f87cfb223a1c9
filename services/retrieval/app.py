"""The retrieval service: ``create_app()`` builds the app; the bundle loads in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.retrieval.engine import RetrievalEngine
from services.retrieval.routes import router
from services.retrieval.settings import RetrievalSettings, get_settings
from shared.schemas.v1 import Health
from shared.service_app import bundle_check, load_engine, ready_response, stop_task
from shared.service_app import create_app as create_base_app
from shared.stores.fresh_items import FreshItemStore
from shared.stores.redis_conn import RedisGuard, RedisUnavailable
from shared.stores.user_state import UserStateStore

log = logging.getLogger("hybridrec.retrieval")
REFRESH_S = 2.0


def create_app(settings: RetrievalSettings | None = None) -> FastAPI:
    """The retrieval app (internal; the gateway calls it)."""
    settings = settings or get_settings()

    async def load(app: FastAPI, guard: RedisGuard | None) -> None:
        store = UserStateStore(
            guard, prefix=settings.redis_prefix, max_history=settings.max_history
        )
        fresh = FreshItemStore(guard, settings.state_dir, prefix=settings.redis_prefix)

        def _load() -> RetrievalEngine:
            loaded = RetrievalEngine.load(settings, store, fresh)
            loaded.warm_text_encoder()
            return loaded

        engine = await load_engine(app, _load)
        if engine is None:
            return
        try:
            await engine.refresh_fresh_items()
        except RedisUnavailable:
            log.warning("fresh items not loaded yet: Redis is down")
        app.state.engine = engine
        log.info("retrieval ready: bundle %s, %d items", engine.version, engine.n_items)
        while True:
            await asyncio.sleep(REFRESH_S)
            with contextlib.suppress(RedisUnavailable):
                await engine.refresh_fresh_items()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        guard = (
            RedisGuard(settings.redis_url, timeout_s=settings.redis_timeout_s)
            if (settings.redis_url)
            else None
        )
        app.state.redis = guard
        task = asyncio.create_task(load(app, guard))
        try:
            yield
        finally:
            await stop_task(task)
            if guard is not None:
                await guard.close()

    app = create_base_app(
        service="retrieval",
        title="hybridrec retrieval",
        description="Internal: candidate generation, similar items, catalogue, new items.",
        version="1.0.0",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        openapi_tags=[
            {"name": "retrieval", "description": "Candidates."},
            {"name": "items", "description": "Catalogue."},
            {"name": "users", "description": "User state."},
        ],
    )
    app.state.engine = None
    app.state.load_error = None
    app.include_router(router)

    @app.get(
        "/health/ready",
        tags=["ops"],
        response_model=Health,
        summary="Readiness",
        operation_id="retrieval_health_ready",
        responses={503: {"model": Health, "description": "Not ready; checks say why."}},
    )
    async def health_ready(request: Request) -> JSONResponse:
        """Ready once the bundle is loaded; Redis being down only bypasses the cache."""
        engine: RetrievalEngine | None = request.app.state.engine
        checks = bundle_check(request.app)
        guard: RedisGuard | None = request.app.state.redis
        if guard is not None:
            checks["redis"] = "ok" if await guard.ping() else "ok (degraded: Redis down, no cache)"
        else:
            checks["redis"] = "ok (not configured: in-process cache)"
        return ready_response("retrieval", engine.version if engine else None, checks)

    return app
