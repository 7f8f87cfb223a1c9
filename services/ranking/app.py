"""The ranking service: ``create_app()`` builds the app; the bundle loads in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.ranking.engine import RankingEngine
from services.ranking.routes import router
from services.ranking.settings import RankingSettings, get_settings
from services.ranking.warmup import warm_up
from shared.contracts.internal_v1 import RankRequest
from shared.contracts.public_v1 import Health
from shared.serving.admin_routes import admin_router
from shared.serving.app_factory import bundle_check, load_engine, ready_response, stop_task
from shared.serving.app_factory import create_app as create_base_app
from shared.serving.json_body import register_schemas
from shared.serving.process_tuning import freeze_heap, limit_compute_threads
from shared.serving.reload import BundleReloader, reload_metrics

log = logging.getLogger("hybridrec.ranking")


def create_app(settings: RankingSettings | None = None) -> FastAPI:
    """The ranking app (internal; the gateway calls it)."""
    settings = settings or get_settings()

    async def load(app: FastAPI, reloader: BundleReloader[RankingEngine]) -> None:
        engine = await load_engine(app, lambda: _warm(RankingEngine.load(settings)))
        if engine is None:
            reloader.startup_failed()
            return
        reloader.adopt(engine, engine.version, engine.bundle.root)
        log.info("ranking ready: bundle %s", engine.version)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_compute_threads(settings.compute_threads, import_tensorflow=True)  # before loads
        reloader = BundleReloader(
            service="ranking",
            artifacts=settings.artifacts,
            build=lambda bundle: _warm(RankingEngine(settings, bundle)),
            swap=lambda engine: _swap(app, engine),
            verify=settings.verify_bundle,
            metrics=reload_metrics(app),
        )
        app.state.reloader = reloader
        task = asyncio.create_task(load(app, reloader))
        watcher = reloader.start_watching(settings.watch_latest_s)
        try:
            yield
        finally:
            if watcher is not None:
                await stop_task(watcher)
            await stop_task(task)

    app = create_base_app(
        service="ranking",
        title="hybridrec ranking",
        description="Internal: scores retrieval candidates with the hybrid deep ranker.",
        version="1.0.0",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        log_level=settings.log_level,
        openapi_tags=[
            {"name": "ranking", "description": "Scoring."},
            {"name": "admin", "description": "Active bundle and hot reload."},
        ],
    )
    app.state.engine = None
    app.state.load_error = None
    app.state.reloader = None
    app.state.admin_key = settings.admin_key
    app.include_router(router)
    register_schemas(app, RankRequest)
    app.include_router(admin_router("ranking"))

    @app.get(
        "/health/ready",
        tags=["ops"],
        response_model=Health,
        summary="Readiness",
        operation_id="ranking_health_ready",
        responses={503: {"model": Health, "description": "Not ready; checks say why."}},
    )
    async def health_ready(request: Request) -> JSONResponse:
        """Ready once the ranker is loaded."""
        engine: RankingEngine | None = request.app.state.engine
        checks = bundle_check(request.app)
        return ready_response("ranking", engine.version if engine else None, checks)

    return app


def _warm(engine: RankingEngine) -> RankingEngine:
    """``engine`` after :func:`~services.ranking.warmup.warm_up` (in the loading thread):
    ready means warm."""
    warm_up(engine)
    return engine


def _swap(app: FastAPI, engine: RankingEngine) -> None:
    app.state.engine = engine  # one assignment; in-flight requests keep the old engine
    app.state.load_error = None
    freeze_heap()
