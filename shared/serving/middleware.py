"""Every service's request middleware: four small pure-ASGI classes, outermost first.

1. :class:`MetricsMiddleware`: the request-latency histogram by route and status, and the
   ``Server-Timing`` header of the request's stages (:mod:`shared.serving.timing`);
2. :class:`RequestIdMiddleware`: the caller's ``x-request-id`` (cleaned) or a new one, in
   ``request.state`` and echoed in the response;
3. :class:`BodyLimitMiddleware`: 413 for a body over ``HYBRIDREC_MAX_BODY_BYTES``, whether
   its ``Content-Length`` says so or it grows past the limit while it is read;
4. :class:`DeadlineMiddleware`: 503 at once, and no work, for a request whose caller's
   deadline (``x-hybridrec-deadline``, sent by :mod:`shared.serving.clients`) has passed.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which costs a task and a stream
per request; the error bodies are the services' one error model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.serving import timing

#: Sent by :mod:`shared.serving.clients`: when the caller stops waiting (Unix time);
#: a request found after it gets 503 and no work.
DEADLINE_HEADER = b"x-hybridrec-deadline"
ErrorJson = Callable[[int, str, str, str | None], JSONResponse]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


def _request_id(scope: Scope) -> str | None:
    return (scope.get("state") or {}).get("request_id")


class MetricsMiddleware:
    """Latency by route and status, and the ``Server-Timing`` header of each answer."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry, service: str) -> None:
        self.app = app
        self.service = service
        self.latency = Histogram(
            "hybridrec_http_request_seconds",
            "Request latency by route",
            ["service", "method", "route", "status"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        times, token = timing.collect()

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                now = time.perf_counter()
                # After the last timed stage: building and encoding the response.
                tail = {"serialise": now - times.last_end} if times.last_end else {}
                value = times.header(**tail, total=now - start)
                message["headers"] = [
                    *(message.get("headers") or []),
                    (b"server-timing", value.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            timing.finish(token)
            path = getattr(scope.get("route"), "path", "unmatched")
            self.latency.labels(self.service, scope.get("method", ""), path, str(status)).observe(
                time.perf_counter() - start
            )


class RequestIdMiddleware:
    """The request's id: the caller's ``x-request-id`` (printable ASCII, 64 characters at
    most, since it is echoed and forwarded) or a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = _header(scope, b"x-request-id") or b""
        rid = "".join(c for c in raw.decode("latin-1") if "!" <= c <= "~")[:64]
        rid = rid or uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = list(message.get("headers") or [])
                if not any(name.lower() == b"x-request-id" for name, _ in present):
                    present.append((b"x-request-id", rid.encode("latin-1")))
                message["headers"] = present
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyTooLarge(StarletteHTTPException):
    """The body grew past the limit while it was read (chunked, or a lying Content-Length).

    An HTTPException because FastAPI turns any other exception raised while it reads a
    body into "400 There was an error parsing the body".
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(413, too_large_message(size, limit))
        self.size = size


def too_large_message(size: int, limit: int) -> str:
    """What a 413 says: the size, the limit and its setting, and what to do."""
    return (
        f"the request body has {size} bytes or more; the limit is {limit} bytes "
        "(HYBRIDREC_MAX_BODY_BYTES); send fewer ids per request"
    )


class BodyLimitMiddleware:
    """413 for a body over ``max_body_bytes``: declared, or found while reading."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, error_json: ErrorJson) -> None:
        self.app = app
        self.limit = max_body_bytes
        self.error_json = error_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        try:
            declared = int(_header(scope, b"content-length") or b"")
        except ValueError:
            declared = None
        if declared is not None and declared > self.limit:
            await self._reject(scope, receive, send, declared)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(received, self.limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge as exc:
            # Raised outside a route's body parsing (inside one, FastAPI passes the
            # HTTPException to the error handler, which answers the same 413).
            await self._reject(scope, receive, send, exc.size)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        message = too_large_message(size, self.limit)
        response = self.error_json(413, "payload_too_large", message, _request_id(scope))
        await response(scope, receive, send)


class DeadlineMiddleware:
    """503 at once for a request its caller has stopped waiting for: doing the work would
    only delay the requests queued behind it (load shedding under overload)."""

    def __init__(self, app: ASGIApp, *, error_json: ErrorJson) -> None:
        self.app = app
        self.error_json = error_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and deadline_passed(_header(scope, DEADLINE_HEADER)):
            shed = self.error_json(
                503,
                "deadline_exceeded",
                "the caller's deadline passed before this request could start; it was dropped",
                _request_id(scope),
            )
            await shed(scope, receive, send)
            return
        await self.app(scope, receive, send)


def deadline_passed(raw: bytes | None) -> bool:
    """True when a caller's ``x-hybridrec-deadline`` (Unix time, seconds) is in the past."""
    if not raw:
        return False
    try:
        return time.time() > float(raw)
    except ValueError:
        return False


def install(
    app: Any, *, max_body_bytes: int, registry: CollectorRegistry, service: str,
    error_json: ErrorJson,
) -> None:  # fmt: skip
    """Add the four middlewares in their order (Starlette runs the last added first)."""
    app.add_middleware(DeadlineMiddleware, error_json=error_json)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes, error_json=error_json)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware, registry=registry, service=service)
