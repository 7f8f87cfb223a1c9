"""HTTP clients for the internal services (used by the gateway).

One pooled keep-alive connection pool per dependency for the app's lifetime
(:class:`shared.serving.http1.ConnectionPool`), with explicit timeouts: ``timeout_s`` per
call (the whole exchange, connect included; at most 0.5 s to connect). Errors
are translated into :mod:`shared.contracts.errors`: a 4xx from the dependency keeps its
status and message (the caller's mistake), anything else (connection refused,
timeout, 5xx, a body that is not what was promised) becomes
:class:`DependencyUnavailableError`. Each call is timed as the stage named after
the dependency, and the dependency's own ``Server-Timing`` stages are folded in
under that prefix (``retrieval.ann``; :mod:`shared.serving.timing`). Typed calls encode
and decode with pydantic's JSON (``model_dump_json`` / ``model_validate_json``),
timed as the ``codec`` stage. Each call carries its deadline
(``x-hybridrec-deadline``, Unix time): a dependency that only gets to a request
after the caller gave up answers 503 at once instead of doing the work
(:mod:`shared.serving.app_factory`), so an overload sheds load instead of snowballing.

Why not httpx: ``bench/client_cost.py`` drove a trivial FastAPI endpoint and the
real ranking service's ``/v1/rank`` (200 candidates, 67 KB body) with 32
concurrent callers from one process, under uvloop, on this 2-core machine shared
with other work (medians of 3 rounds in one run; client CPU per request is what
the gateway pays; the ranking rows are bound by the server's ~18 ms of CPU):

========================  =======  =======  =======  =================  ========
client, target            req/s    p50 ms   p99 ms   client CPU ms/req  vs httpx
========================  =======  =======  =======  =================  ========
httpx 0.28, trivial           103    229.7   1180.2              8.544     1.00
aiohttp 3.14, trivial        1653     17.0     40.9              0.281     0.03
raw asyncio, trivial         2331     13.0     28.7              0.150     0.02
httpx 0.28, /v1/rank           30    787.3   2905.3             16.587     1.00
aiohttp 3.14, /v1/rank         39    701.4   1242.9              4.824     0.29
raw asyncio, /v1/rank          42    626.3   1177.5              4.402     0.27
========================  =======  =======  =======  =================  ========

(The /v1/rank client CPU includes encoding the 67 KB body and decoding the answer
with the standard json module, the same for every client.) httpx's pool costs
milliseconds of CPU per request under concurrency; the raw client is the
cheapest and does all these calls need, with no dependency, so it is used here.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from shared.contracts.errors import (
    DependencyUnavailableError,
    HybridrecError,
    NotFoundError,
    ValidationError,
)
from shared.contracts.internal_v1 import (
    CandidatesRequest,
    CandidatesResponse,
    RankRequest,
    RankResponse,
)
from shared.serving import timing
from shared.serving.http1 import ConnectionPool, HTTPError, Response

M = TypeVar("M", bound=BaseModel)


class UpstreamClientError(HybridrecError):
    """A dependency refused the request as malformed (4xx other than 404/422)."""

    code = "upstream_rejected"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.http_status = status


class ServiceClient:
    """A pooled JSON client for one internal service."""

    def __init__(
        self, name: str, base_url: str, *, timeout_s: float, max_connections: int = 64
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.pool = ConnectionPool(
            self.base_url, max_connections=max_connections, connect_timeout_s=min(timeout_s, 0.5)
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        request_id: str | None = None,
    ) -> Response:
        """Send a request within the budget; return a response below 400 or raise."""
        budget = timeout_s if timeout_s is not None else self.timeout_s
        # The dependency drops the request unstarted once we have stopped waiting for it.
        headers = [("x-hybridrec-deadline", f"{time.time() + budget:.3f}")]
        if request_id:
            headers.append(("x-request-id", request_id))
        try:
            # One deadline for the whole exchange (a server dripping bytes included).
            with timing.stage(self.name):
                async with asyncio.timeout(budget):
                    resp = await self.pool.request(
                        method, path, params=params, headers=headers, body=body
                    )
        except TimeoutError as exc:
            raise DependencyUnavailableError(
                f"{self.name} did not answer within {budget:.3f} s",
                dependency=self.name,
            ) from exc
        except HTTPError as exc:
            raise DependencyUnavailableError(
                f"{self.name} at {self.base_url} is unreachable ({type(exc).__name__}: {exc})",
                dependency=self.name,
            ) from exc
        timing.add_remote(self.name, resp.header("server-timing"))
        if resp.status < 400:
            return resp
        message = _error_message(resp)
        if resp.status == 404:
            raise NotFoundError(message)
        if resp.status == 422:
            raise ValidationError(message)
        if 400 <= resp.status < 500:
            raise UpstreamClientError(message, resp.status)
        raise DependencyUnavailableError(
            f"{self.name} answered {resp.status}: {message}", dependency=self.name
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        request_id: str | None = None,
    ) -> Any:
        """Send a request; return the decoded JSON body (None if empty) or raise."""
        body = _dumps(json) if json is not None else None
        resp = await self.send(
            method, path, body=body, params=params, timeout_s=timeout_s, request_id=request_id
        )
        if not resp.body:
            return None
        try:
            return _loads(resp.body)
        except ValueError as exc:
            raise self._bad_body(resp) from exc

    async def call_model(
        self,
        path: str,
        req: BaseModel,
        response_model: type[M],
        *,
        timeout_s: float,
        request_id: str | None,
        exclude: Any = None,
    ) -> M:
        """POST a model as JSON (less the ``exclude`` fields) and parse the answer."""
        with timing.stage("codec"):
            body = req.model_dump_json(exclude=exclude).encode()
        resp = await self.send("POST", path, body=body, timeout_s=timeout_s, request_id=request_id)
        try:
            with timing.stage("codec"):
                return response_model.model_validate_json(resp.body)
        except PydanticValidationError as exc:
            raise self._bad_body(resp, str(exc.errors(include_url=False)[:3])) from exc

    def _bad_body(self, resp: Response, why: str = "") -> DependencyUnavailableError:
        text = resp.body[:200].decode("utf-8", "replace")
        return DependencyUnavailableError(
            f"{self.name} answered {resp.status} with a body that is not JSON"
            f"{' of the expected shape (' + why + ')' if why else ''}: {text!r}",
            dependency=self.name,
        )

    async def ready(self) -> bool:
        """True when the service says it is ready."""
        try:
            async with asyncio.timeout(0.5):
                resp = await self.pool.request("GET", "/health/ready")
        except (TimeoutError, HTTPError):
            return False
        return resp.status == 200

    async def close(self) -> None:
        """Close the pool."""
        await self.pool.close()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _loads(raw: bytes) -> Any:
    return json.loads(raw)


def _error_message(resp: Response) -> str:
    try:
        body = _loads(resp.body)
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.body[:300].decode("utf-8", "replace") or f"HTTP {resp.status}"


class RetrievalClient(ServiceClient):
    """Typed calls to the retrieval service."""

    async def candidates(
        self, req: CandidatesRequest, *, timeout_s: float, request_id: str | None = None
    ) -> CandidatesResponse:
        return await self.call_model(
            "/v1/candidates",
            req,
            CandidatesResponse,
            timeout_s=timeout_s,
            request_id=request_id,
        )


#: Candidate fields ranking does not read (display metadata): not sent.
_RANKING_NEEDS_NO = {
    "candidates": {"__all__": {"title", "year", "genres"}},
    "columns": {"titles", "years", "genres"},
}


class RankingClient(ServiceClient):
    """Typed calls to the ranking service."""

    async def rank(
        self, req: RankRequest, *, timeout_s: float, request_id: str | None = None
    ) -> RankResponse:
        return await self.call_model(
            "/v1/rank",
            req,
            RankResponse,
            timeout_s=timeout_s,
            request_id=request_id,
            exclude=_RANKING_NEEDS_NO,
        )
