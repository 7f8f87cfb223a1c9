"""What every hybridrec service's FastAPI app has in common.

* the one error handler mapping :mod:`shared.contracts.errors` to HTTP statuses and the
  shared :class:`~shared.contracts.public_v1.ErrorResponse` model,
* the request middleware of :mod:`shared.serving.middleware` (metrics and
  ``Server-Timing``, request ids, the body-size limit, deadline shedding),
* ``/health/live`` and ``/metrics``, and Swagger UI / ReDoc served offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.contracts.errors import HybridrecError, NotReadyError
from shared.contracts.public_v1 import ErrorResponse, Health
from shared.serving import middleware

log = logging.getLogger("hybridrec.http")
T = TypeVar("T")

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "A user, item or path that does not exist."},
    413: {"model": ErrorResponse, "description": "The body is larger than the configured limit."},
    422: {
        "model": ErrorResponse,
        "description": "The request breaks the schema; says which field.",
    },
    503: {"model": ErrorResponse, "description": "Not ready, or a dependency did not answer."},
}
CONFLICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The id is taken (a new item's own item_id)."},
}


def error_json(
    status: int, code: str, message: str, request_id: str | None, **details: Any
) -> JSONResponse:
    """The shared error model as a response."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    headers = {"x-request-id": request_id} if request_id else None
    return JSONResponse(
        {"error": body, "request_id": request_id}, status_code=status, headers=headers
    )


def request_id_of(request: Request) -> str | None:
    """The id the middleware gave this request."""
    return request.scope.get("state", {}).get("request_id")


def _describe_validation(errors: Sequence[Any]) -> tuple[str, list[dict[str, Any]]]:
    parts = []
    cleaned = []
    for err in list(errors)[:10]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = err.get("msg", "invalid")
        got = err.get("input")
        got_s = repr(got)
        if len(got_s) > 80:
            got_s = got_s[:77] + "..."
        if err.get("type") == "json_invalid":
            loc_parts = list(err.get("loc", ()))
            pos = loc_parts[-1] if loc_parts and isinstance(loc_parts[-1], int) else None
            where = f" at character {pos}" if pos is not None else ""
            reason = (err.get("ctx") or {}).get("error", msg)
            parts.append(f"the body is not valid JSON ({reason}{where}); send a JSON object")
            loc = "body"
        elif loc == "body" and isinstance(got, bytes):
            parts.append(
                "the body was not read as JSON; send a JSON object with "
                "Content-Type: application/json"
            )
        elif err.get("type") == "missing" and loc == "body":
            parts.append("the body is empty; send a JSON object ({} for the defaults)")
        elif err.get("type") == "missing":
            parts.append(f"{loc}: field required")
        else:
            parts.append(f"{loc}: {msg} (got {got_s})")
        cleaned.append({"field": loc, "problem": msg, "type": err.get("type")})
    more = len(errors) - len(cleaned)
    message = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return message, cleaned


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the shared error model; never leak a stack trace."""

    @app.exception_handler(HybridrecError)
    async def _hybridrec(request: Request, exc: HybridrecError) -> JSONResponse:
        details = {k: v for k, v in exc.details.items() if v is not None}
        return error_json(exc.http_status, exc.code, exc.message, request_id_of(request), **details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, cleaned = _describe_validation(exc.errors())
        return error_json(422, "invalid_request", message, request_id_of(request), errors=cleaned)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        message = str(exc.detail)
        status = exc.status_code
        if status == 400 and message == "There was an error parsing the body":
            # FastAPI's answer when json.loads fails other than by syntax: bytes that are
            # not UTF-8, or nesting past the recursion limit. A 422 like any other body
            # that is not JSON (400 is not in the documented responses).
            status, code = 422, "invalid_request"
            message = (
                "the body could not be parsed as JSON (not UTF-8, or nested too deeply); "
                "send a flat JSON object encoded as UTF-8"
            )
        if status == 404 and message == "Not Found":
            message = f"no such path: {request.method} {request.url.path}; see /docs for the API"
        headers = dict(exc.headers or {})
        if status == 405:
            # RFC 9110 requires Allow on a 405; Starlette's names only the first route
            # matching the path, not every method of a path served by several routes.
            allow = _allowed_methods(request) or headers.get("Allow", "")
            headers["Allow"] = allow
            message = f"{request.method} is not allowed on {request.url.path}; use {allow}"
        response = error_json(status, code, message, request_id_of(request))
        response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id_of(request)
        log.exception(
            "unhandled error in %s %s (request %s)", request.method, request.url.path, rid
        )
        return error_json(
            500, "internal_error", f"internal error; the server log has request id {rid}", rid
        )


def _allowed_methods(request: Request) -> str:
    """Every method some route of the app serves at this request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.scope["path"]):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def create_app(
    *,
    service: str,
    title: str,
    description: str,
    version: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    max_body_bytes: int,
    openapi_tags: list[dict[str, str]] | None = None,
    log_level: str = "info",
) -> FastAPI:
    """A FastAPI app with the shared handlers, middleware, docs and health/metrics routes."""
    configure_logging(log_level)
    app: FastAPI = FastAPIOffline(
        redoc_url=None,
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_tags=[*(openapi_tags or []), {"name": "ops", "description": "Health and metrics."}],
    )
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    app.state.service_name = service
    install_error_handlers(app)
    middleware.install(
        app, max_body_bytes=max_body_bytes, registry=registry, service=service,
        error_json=error_json,
    )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        """ReDoc from the bundled script; the CSP stops it loading its logo from a CDN."""
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}/static-offline-docs/redoc.standalone.js",
            redoc_favicon_url=f"{root}/static-offline-docs/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page

    @app.get(
        "/health/live",
        tags=["ops"],
        response_model=Health,
        summary="Liveness",
        operation_id=f"{service}_health_live",
    )
    async def health_live() -> Health:
        """The process is up and answering."""
        return Health(status="ok", service=service)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics",
        operation_id=f"{service}_metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
    )
    async def metrics() -> Response:
        """Request latency histograms and service gauges in Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def configure_logging(level: str) -> None:
    """Send the ``hybridrec.*`` loggers to stderr at ``level`` (HYBRIDREC_LOG_LEVEL), once."""
    root = logging.getLogger("hybridrec")
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    if not root.handlers and not logging.getLogger().handlers:  # nobody configured logging
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)


async def load_engine(app: FastAPI, loader: Callable[[], T]) -> T | None:
    """Run a blocking bundle loader in a thread; a failure lands in ``app.state.load_error``.

    Any exception is recorded (and logged) rather than lost in a background task, so
    readiness can say why the service has no bundle.
    """
    try:
        return await asyncio.to_thread(loader)
    except HybridrecError as exc:
        app.state.load_error = str(exc)
        log.error("cannot load the bundle: %s", exc)
    except Exception as exc:  # a broken bundle must show in readiness, not vanish
        app.state.load_error = f"{type(exc).__name__}: {exc}"
        log.exception("cannot load the bundle")
    return None


def loaded_engine(app: FastAPI, service: str) -> Any:
    """``app.state.engine`` once the bundle is loaded (a route's or an in-process caller's).

    Raises:
        NotReadyError: Still loading, or the load failed (the message says which and why).
    """
    engine = getattr(app.state, "engine", None)
    if engine is None:
        error = getattr(app.state, "load_error", None)
        raise NotReadyError(
            f"{service} has no bundle loaded ({error})"
            if error
            else f"{service} is still loading its bundle; retry in a moment"
        )
    return engine


def bundle_check(app: FastAPI) -> dict[str, str]:
    """The ``bundle`` readiness check of a service that loads one in the background."""
    error = app.state.load_error
    if app.state.engine is not None:
        return {"bundle": "ok"}
    return {"bundle": f"missing: {error}" if error else "loading"}


async def stop_task(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def ready_response(service: str, version: str | None, checks: dict[str, str]) -> JSONResponse:
    """200 when every check says ok, else 503 naming what is missing."""
    ok = all(v == "ok" or v.startswith("ok") for v in checks.values())
    body = Health(
        status="ok" if ok else "not_ready", service=service, model_version=version, checks=checks
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
