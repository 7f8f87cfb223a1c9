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
from shared.schemas.v1 import Health
from shared.service_app import bundle_check, load_engine, ready_response, stop_task
from shared.service_app import create_app as create_base_app

log = logging.getLogger("hybridrec.ranking")


def create_app(settings: RankingSettings | None = None) -> FastAPI:
    """The ranking app (internal; the gateway calls it)."""
    settings = settings or get_settings()

    async def load(app: FastAPI) -> None:
        engine = await load_engine(app, lambda: RankingEngine.load(settings))
        if engine is not None:
            app.state.engine = engine
            log.info("ranking ready: bundle %s", engine.version)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(load(app))
        try:
            yield
        finally:
            await stop_task(task)

    app = create_base_app(
        service="ranking",
        title="hybridrec ranking",
        description="Internal: scores retrieval candidates with the hybrid deep ranker.",
        version="1.0.0",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        openapi_tags=[{"name": "ranking", "description": "Scoring."}],
    )
    app.state.engine = None
    app.state.load_error = None
    app.include_router(router)

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
