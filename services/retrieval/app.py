"""The retrieval service: ``create_app()`` builds the app; the bundle loads in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.retrieval import fresh
from services.retrieval.engine import RetrievalEngine
from services.retrieval.routes import router
from services.retrieval.settings import RetrievalSettings, get_settings
from services.retrieval.warmup import warm_up
from shared.contracts.bundle import Bundle, load_bundle
from shared.contracts.public_v1 import Health
from shared.serving.admin_routes import admin_router
from shared.serving.app_factory import bundle_check, load_engine, ready_response, stop_task
from shared.serving.app_factory import create_app as create_base_app
from shared.serving.process_tuning import freeze_heap, huge_page_report, limit_compute_threads
from shared.serving.reload import BundleReloader, reload_metrics
from shared.stores.fresh_items import FreshItemStore
from shared.stores.redis_conn import RedisGuard, RedisUnavailable
from shared.stores.user_state import UserStateStore

log = logging.getLogger("hybridrec.retrieval")
REFRESH_S = 2.0


def create_app(settings: RetrievalSettings | None = None) -> FastAPI:
    """The retrieval app (internal; the gateway calls it)."""
    settings = settings or get_settings()

    async def load(app: FastAPI, reloader: BundleReloader[RetrievalEngine]) -> None:
        engine = await load_engine(
            app,
            lambda: reloader.build(load_bundle(settings.artifacts, verify=settings.verify_bundle)),
        )
        if engine is None:
            reloader.startup_failed()
            return
        try:
            await fresh.refresh(engine)
        except RedisUnavailable:
            log.warning("fresh items not loaded yet: Redis is down")
        reloader.adopt(engine, engine.version, engine.bundle.root)
        log.info("retrieval ready: bundle %s, %d items", engine.version, engine.n_items)
        while True:
            await asyncio.sleep(REFRESH_S)
            with contextlib.suppress(RedisUnavailable):
                await fresh.refresh(app.state.engine)  # the current engine

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_compute_threads(settings.compute_threads, import_tensorflow=True)  # before loads
        guard = (
            RedisGuard(settings.redis_url, timeout_s=settings.redis_timeout_s)
            if (settings.redis_url)
            else None
        )
        app.state.redis = guard
        store = UserStateStore(
            guard, prefix=settings.redis_prefix, max_history=settings.max_history
        )
        fresh_store = FreshItemStore(guard, settings.state_dir, prefix=settings.redis_prefix)

        def build(bundle: Bundle) -> RetrievalEngine:
            """An engine beside the current one, warm (BERT is shared, not loaded again).

            Runs in a worker thread; the engine is served (ready) only after
            :func:`~services.retrieval.warmup.warm_up` ran every code path once.
            """
            engine = RetrievalEngine(settings, bundle, store, fresh_store)
            current: RetrievalEngine | None = app.state.engine
            if current is not None and current._text_encoder is not None:
                engine._text_encoder = current._text_encoder
            else:
                engine.warm_text_encoder()
            warm_up(engine)
            return engine

        async def prepare(engine: RetrievalEngine) -> None:
            with contextlib.suppress(RedisUnavailable):
                await fresh.refresh(engine)

        reloader = BundleReloader(
            service="retrieval",
            artifacts=settings.artifacts,
            build=build,
            swap=lambda engine: _swap(app, engine),
            prepare=prepare,
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
            if guard is not None:
                await guard.close()

    app = create_base_app(
        service="retrieval",
        title="hybridrec retrieval",
        description="Internal: candidate generation, similar items, catalogue, new items.",
        version="1.0.0",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        log_level=settings.log_level,
        openapi_tags=[
            {"name": "retrieval", "description": "Candidates."},
            {"name": "items", "description": "Catalogue."},
            {"name": "users", "description": "User state."},
            {"name": "admin", "description": "Active bundle and hot reload."},
        ],
    )
    app.state.engine = None
    app.state.huge_pages = None
    app.state.load_error = None
    app.state.reloader = None
    app.state.admin_key = settings.admin_key
    app.include_router(router)
    app.include_router(admin_router("retrieval"))

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
        if engine is not None:
            checks["search"] = (
                f"ok (two_tower: {engine.item_index.kind}, "
                f"content: {engine.content_index.kind})"
            )
        if request.app.state.huge_pages is not None:
            checks["huge_pages"] = request.app.state.huge_pages
        return ready_response("retrieval", engine.version if engine else None, checks)

    return app


def _swap(app: FastAPI, engine: RetrievalEngine) -> None:
    app.state.engine = engine  # one assignment; in-flight requests keep the old engine
    app.state.load_error = None
    freeze_heap()
    app.state.huge_pages = _huge_pages_check()


def _huge_pages_check() -> str:
    """One line on how much of the heap (the HNSW graphs) is in huge pages, for readiness."""
    r = huge_page_report()
    line = (
        f"{r['anon_huge_mb']} of {r['anon_mb']} MB anonymous memory in huge pages "
        f"(THP {r['thp_mode']}, GLIBC_TUNABLES={r['glibc_tunables'] or 'unset'})"
    )
    log.info("retrieval memory: %s", line)
    return f"ok ({line})"
