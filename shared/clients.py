"""HTTP clients for the internal services (used by the gateway).

One pooled ``httpx.AsyncClient`` per dependency for the app's lifetime, with
explicit timeouts. Errors are translated into :mod:`shared.errors`: a 4xx from the
dependency keeps its status and message (the caller's mistake), anything else
(connection refused, timeout, 5xx) becomes :class:`DependencyUnavailableError`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shared.errors import DependencyUnavailableError, HybridrecError, NotFoundError, ValidationError
from shared.schemas.internal_v1 import (
    CandidatesRequest,
    CandidatesResponse,
    RankRequest,
    RankResponse,
)


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
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 0.5)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
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
        """Send a request; return the decoded JSON body or raise a hybridrec error."""
        headers = {"x-request-id": request_id} if request_id else None
        budget = timeout_s if timeout_s is not None else self.timeout_s
        try:
            # httpx's timeouts are per network operation; asyncio.timeout makes the
            # budget hold for the whole exchange (a server dripping bytes included).
            async with asyncio.timeout(budget):
                resp = await self.http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(budget, connect=min(budget, 0.5)),
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise DependencyUnavailableError(
                f"{self.name} did not answer within {budget:.3f} s",
                dependency=self.name,
            ) from exc
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(
                f"{self.name} at {self.base_url} is unreachable ({type(exc).__name__}: {exc})",
                dependency=self.name,
            ) from exc
        if resp.status_code < 400:
            if not resp.content:
                return None
            try:
                return resp.json()
            except ValueError as exc:
                raise DependencyUnavailableError(
                    f"{self.name} answered {resp.status_code} with a body that is not JSON: "
                    f"{resp.text[:200]!r}",
                    dependency=self.name,
                ) from exc
        message = _error_message(resp)
        if resp.status_code == 404:
            raise NotFoundError(message)
        if resp.status_code == 422:
            raise ValidationError(message)
        if 400 <= resp.status_code < 500:
            raise UpstreamClientError(message, resp.status_code)
        raise DependencyUnavailableError(
            f"{self.name} answered {resp.status_code}: {message}", dependency=self.name
        )

    async def ready(self) -> bool:
        """True when the service says it is ready."""
        try:
            resp = await self.http.get("/health/ready", timeout=0.5)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def close(self) -> None:
        """Close the pool."""
        await self.http.aclose()


def _error_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return resp.text[:300] or f"HTTP {resp.status_code}"


class RetrievalClient(ServiceClient):
    """Typed calls to the retrieval service."""

    async def candidates(
        self, req: CandidatesRequest, *, timeout_s: float, request_id: str | None = None
    ) -> CandidatesResponse:
        data = await self.request(
            "POST",
            "/v1/candidates",
            json=req.model_dump(mode="json"),
            timeout_s=timeout_s,
            request_id=request_id,
        )
        return CandidatesResponse.model_validate(data)


class RankingClient(ServiceClient):
    """Typed calls to the ranking service."""

    async def rank(
        self, req: RankRequest, *, timeout_s: float, request_id: str | None = None
    ) -> RankResponse:
        data = await self.request(
            "POST",
            "/v1/rank",
            json=req.model_dump(mode="json"),
            timeout_s=timeout_s,
            request_id=request_id,
        )
        return RankResponse.model_validate(data)
