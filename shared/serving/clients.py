"""Typed HTTP clients of the internal services (used by the gateway), on aiohttp.

One :class:`ServiceClient` per dependency holds one pooled keep-alive aiohttp session for
the app's lifetime and explicit timeouts: ``timeout_s`` per call (the whole exchange,
connect included; at most 0.5 s to connect). Errors are translated into
:mod:`shared.contracts.errors`: a 4xx from the dependency keeps its status and message (the
caller's mistake); anything else (connection refused, timeout, 5xx, a body that is not what
was promised) becomes :class:`DependencyUnavailableError`. Each call is timed as the stage
named after the dependency, and the dependency's own ``Server-Timing`` stages are folded in
under that prefix (``retrieval.ann``; :mod:`shared.serving.timing`). Typed calls encode and
decode with pydantic's JSON, timed as the ``codec`` stage. Each call carries its deadline
(``x-hybridrec-deadline``, Unix time): a dependency that only gets to a request after the
caller gave up answers 503 at once instead of doing the work.

**Several instances.** A client takes several base URLs (comma-separated in the settings),
or one URL whose host name resolves to several addresses (a Docker or Kubernetes service
name; re-resolved every ``dns_refresh_s``). Calls go round-robin over the instances not
marked down; an instance that refuses a connection or answers 5xx is marked down for
``cooldown_s``, and an idempotent call (every read and every pure computation: candidates,
rank, explain, lookups) is retried once on another instance within the same budget. Calls
that change state (a new item, a history update) are never retried.

Why aiohttp: ``bench/client_cost.py`` measures httpx and aiohttp on the real ``/v1/rank``
call in one run; the figures and the choice are in ``docs/performance.md``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, TypeVar, Unpack
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from shared.contracts.admin_v1 import BundleStatus, ReloadRequest, ReloadResult
from shared.contracts.errors import (
    ConflictError,
    DependencyUnavailableError,
    HybridrecError,
    NotFoundError,
    ValidationError,
)
from shared.contracts.filters import ItemFilter
from shared.contracts.internal_v1 import (
    CandidatesRequest,
    CandidatesResponse,
    ExplainRequest,
    ExplainResponse,
    HistoryUpdate,
    RankRequest,
    RankResponse,
)
from shared.contracts.items_v1 import ItemPatch
from shared.contracts.public_v1 import ItemDetail, ItemList, NewItem, SimilarItems
from shared.serving import timing

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=HybridrecError)

#: Failures that say the instance, not the request, is at fault: another one may answer.
_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)


class SendOptions(TypedDict, total=False):
    """How to send one call (see :meth:`ServiceClient.send`)."""

    params: dict[str, Any] | None
    timeout_s: float | None
    request_id: str | None
    headers: Mapping[str, str] | None
    idempotent: bool
    instance: str | None


class UpstreamClientError(HybridrecError):
    """A dependency refused the request as malformed (4xx other than 404/422)."""

    code = "upstream_rejected"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.http_status = status


@dataclass(frozen=True)
class Response:
    """A finished response: status, body bytes, lower-cased headers, which instance."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    instance: str

    def json(self) -> Any:
        """The decoded JSON body (None when empty)."""
        return json.loads(self.body) if self.body else None


@dataclass
class Instance:
    """One copy of a service and when it may be tried again after a failure."""

    url: str
    down_until: float = 0.0
    failures: int = field(default=0)


class _Retry(Exception):
    """An instance-level failure of an idempotent call: try another instance."""

    def __init__(self, error: DependencyUnavailableError) -> None:
        self.error = error


def split_urls(value: str | Sequence[str]) -> list[str]:
    """Base URLs from a comma-separated string or a list, trailing slashes removed."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [u.strip().rstrip("/") for u in parts if u.strip()]
    if not urls:
        raise ValueError(f"no base URL in {value!r}: give one or more comma-separated URLs")
    return urls


class ServiceClient:
    """A pooled JSON client for one internal service, balanced over its instances."""

    def __init__(
        self,
        name: str,
        base_url: str | Sequence[str],
        *,
        timeout_s: float,
        max_connections: int = 64,
        cooldown_s: float = 2.0,
        dns_refresh_s: float = 10.0,
    ) -> None:
        self.name = name
        self.configured = split_urls(base_url)
        self.base_url = ",".join(self.configured)
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.cooldown_s = cooldown_s
        self.dns_refresh_s = dns_refresh_s
        self.instances = [Instance(u) for u in self.configured]
        self._turn = itertools.count()
        self._session: aiohttp.ClientSession | None = None
        self._resolved_at = -float("inf")

    # --- instances -------------------------------------------------------------------

    async def _refresh_instances(self) -> None:
        """Expand one URL whose host name has several addresses into one instance each."""
        if len(self.configured) != 1 or time.monotonic() - self._resolved_at < self.dns_refresh_s:
            return
        self._resolved_at = time.monotonic()
        parts = urlsplit(self.configured[0])
        host = parts.hostname or ""
        try:
            ipaddress.ip_address(host)
            return  # an address literal: nothing to resolve
        except ValueError:
            pass
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError:
            return  # keep what we had; the call itself reports the failure
        v4 = sorted({i[4][0] for i in infos if i[0] == socket.AF_INET})
        addrs = v4 or sorted({f"[{i[4][0]}]" for i in infos if i[0] == socket.AF_INET6})
        if len(addrs) <= 1:
            self.instances = self.instances if len(self.instances) == 1 else [
                Instance(self.configured[0])
            ]
            return
        netlocs = [f"{a}:{port}" for a in addrs]
        known = {i.url: i for i in self.instances}
        urls = [urlunsplit((parts.scheme, n, parts.path, "", "")) for n in netlocs]
        self.instances = [known.get(u, Instance(u)) for u in urls]

    def _pick(self, tried: set[str]) -> Instance | None:
        """The next instance round-robin: healthy first, then the one down longest ago."""
        candidates = [i for i in self.instances if i.url not in tried]
        if not candidates:
            return None
        now = time.monotonic()
        healthy = [i for i in candidates if i.down_until <= now]
        if healthy:
            return healthy[next(self._turn) % len(healthy)]
        return min(candidates, key=lambda i: i.down_until)

    def _mark(self, instance: Instance, ok: bool) -> None:
        if ok:
            instance.failures, instance.down_until = 0, 0.0
        else:
            instance.failures += 1
            instance.down_until = time.monotonic() + self.cooldown_s

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_connections, ttl_dns_cache=int(self.dns_refresh_s) or None
                ),
                auto_decompress=False,
                raise_for_status=False,
            )
        return self._session

    # --- one exchange ------------------------------------------------------------------

    async def _exchange(
        self,
        instance: Instance,
        method: str,
        path: str,
        *,
        body: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        timeout_s: float,
    ) -> Response:
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 0.5))
        async with (
            asyncio.timeout(timeout_s),
            self._http().request(
                method,
                instance.url + path,
                params=query_params(params),
                data=body,
                headers=headers,
                timeout=timeout,
            ) as resp,
        ):
            raw = await resp.read()
            hdrs = {k.lower(): v for k, v in resp.headers.items()}
            return Response(resp.status, raw, hdrs, instance.url)

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        instance: str | None = None,
    ) -> Response:
        """Send a request within the budget; return a response below 400 or raise.

        ``instance`` pins the call to one instance URL (admin calls reach each copy).
        """
        budget = timeout_s if timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + budget
        # The dependency drops the request unstarted once we have stopped waiting for it.
        hdrs = {"x-hybridrec-deadline": f"{time.time() + budget:.3f}", **(headers or {})}
        if body is not None:
            hdrs.setdefault("content-type", "application/json")
        if request_id:
            hdrs["x-request-id"] = request_id
        await self._refresh_instances()
        tried: set[str] = set()
        pinned = next((i for i in self.instances if i.url == instance), None) or (
            Instance(instance) if instance else None
        )
        attempts = 1 if pinned or not idempotent else min(2, len(self.instances))
        error: DependencyUnavailableError | None = None
        with timing.stage(self.name):
            for _ in range(attempts):
                target = pinned or self._pick(tried)
                left = deadline - time.monotonic()
                if target is None or left <= 0.005:
                    break
                tried.add(target.url)
                try:
                    resp = await self._attempt(
                        target, method, path, body, params, hdrs, left, budget
                    )
                except _Retry as retry:
                    error = retry.error
                    continue
                timing.add_remote(self.name, resp.headers.get("server-timing"))
                return self._checked(resp)
        raise error or DependencyUnavailableError(
            f"{self.name} did not answer within {budget:.3f} s", dependency=self.name
        )

    async def _attempt(
        self,
        target: Instance,
        method: str,
        path: str,
        body: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        left: float,
        budget: float,
    ) -> Response:
        try:
            resp = await self._exchange(
                target, method, path, body=body, params=params, headers=headers, timeout_s=left
            )
        except aiohttp.ConnectionTimeoutError as exc:
            # Not even connected: the instance is gone (a killed container's address drops
            # packets instead of refusing), so another one may answer within the budget.
            self._mark(target, ok=False)
            raise _Retry(
                DependencyUnavailableError(
                    f"{self.name} at {target.url} did not accept a connection in time",
                    dependency=self.name,
                )
            ) from exc
        except TimeoutError as exc:
            # Slow, not gone: another try would only exceed the caller's budget. The message
            # names the budget the caller set, not the few ms less that were left of it.
            raise DependencyUnavailableError(
                f"{self.name} ({target.url}) did not answer within {budget:.3f} s",
                dependency=self.name,
            ) from exc
        except _CONNECTION_ERRORS as exc:
            self._mark(target, ok=False)
            raise _Retry(
                DependencyUnavailableError(
                    f"{self.name} at {target.url} is unreachable ({type(exc).__name__}: {exc})",
                    dependency=self.name,
                )
            ) from exc
        if resp.status >= 500 and resp.status != 504:
            self._mark(target, ok=False)
            raise _Retry(
                _from_upstream(
                    DependencyUnavailableError(
                        f"{self.name} answered {resp.status}: {_error_message(resp)} "
                        f"(instance {target.url})",
                        dependency=self.name,
                    ),
                    resp,
                )
            )
        self._mark(target, ok=True)
        return resp

    def _checked(self, resp: Response) -> Response:
        if resp.status < 400:
            return resp
        message = _error_message(resp)
        exc: HybridrecError
        if resp.status == 404:
            exc = NotFoundError(message)
        elif resp.status == 422:
            exc = ValidationError(message)
        elif resp.status == 409:
            exc = ConflictError(message)
        elif 400 <= resp.status < 500:
            exc = UpstreamClientError(message, resp.status)
        else:
            exc = DependencyUnavailableError(
                f"{self.name} answered {resp.status}: {message}", dependency=self.name
            )
        raise _from_upstream(exc, resp)

    # --- JSON and typed calls ----------------------------------------------------------

    async def request(
        self, method: str, path: str, *, json: Any = None, **options: Unpack[SendOptions]
    ) -> Any:
        """Send a request; return the decoded JSON body (None if empty) or raise."""
        body = _dumps(json) if json is not None else None
        resp = await self.send(method, path, body=body, **options)
        try:
            return resp.json()
        except ValueError as exc:
            raise self._bad_body(resp) from exc

    async def call_model(
        self,
        method: str,
        path: str,
        req: BaseModel | None,
        response_model: type[M],
        *,
        exclude: Any = None,
        **options: Unpack[SendOptions],
    ) -> M:
        """Send a model as JSON (less the ``exclude`` fields) and parse the answer."""
        body = None
        if req is not None:
            with timing.stage("codec"):
                body = req.model_dump_json(exclude=exclude).encode()
        resp = await self.send(method, path, body=body, **options)
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

    # --- operations (every service has these) ------------------------------------------

    async def health(self, instance: str | None = None, timeout_s: float = 1.0) -> Response:
        """``GET /health/ready`` of one instance (any status; raises when unreachable)."""
        target = instance or (self._pick(set()) or self.instances[0]).url
        resp = await self._exchange(
            Instance(target), "GET", "/health/ready",
            body=None, params=None, headers={}, timeout_s=timeout_s,
        )
        return resp

    async def ready(self) -> bool:
        """True when at least one instance says it is ready."""
        await self._refresh_instances()
        for inst in list(self.instances):
            try:
                if (await self.health(inst.url, timeout_s=0.5)).status == 200:
                    return True
            except (TimeoutError, *_CONNECTION_ERRORS):
                continue
        return False

    async def bundle_status(
        self, instance: str, *, admin_key: str | None, timeout_s: float, request_id: str | None
    ) -> BundleStatus:
        """``GET /v1/admin/bundle`` of one instance."""
        return await self.call_model(
            "GET", "/v1/admin/bundle", None, BundleStatus, timeout_s=timeout_s,
            request_id=request_id, headers=_admin(admin_key), instance=instance,
        )

    async def reload(
        self,
        instance: str,
        req: ReloadRequest,
        *,
        admin_key: str | None,
        timeout_s: float,
        request_id: str | None,
    ) -> ReloadResult:
        """``POST /v1/admin/reload`` on one instance."""
        return await self.call_model(
            "POST", "/v1/admin/reload", req, ReloadResult, timeout_s=timeout_s,
            request_id=request_id, headers=_admin(admin_key), instance=instance,
            idempotent=False,
        )

    async def close(self) -> None:
        """Close the pool."""
        if self._session is not None:
            await self._session.close()


def _admin(key: str | None) -> dict[str, str]:
    return {"X-API-Key": key} if key else {}


def query_params(params: dict[str, Any] | None) -> dict[str, str] | None:
    """Query parameters as strings (booleans as ``true``/``false``), ``None`` values dropped."""
    if not params:
        return None
    return {
        k: ("true" if v is True else "false" if v is False else str(v))
        for k, v in params.items()
        if v is not None
    }


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _error_message(resp: Response) -> str:
    return _error_of(resp)[1]


def _error_of(resp: Response) -> tuple[str, str]:
    """The ``(code, message)`` of a hybridrec error body, or a stand-in for any other body."""
    try:
        error = json.loads(resp.body)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = resp.body[:300].decode("utf-8", "replace") or f"HTTP {resp.status}"
        return "upstream_error", text


def _from_upstream(exc: E, resp: Response) -> E:
    """``exc`` remembering the dependency's own ``(status, code, message)`` (``exc.upstream``)."""
    exc.upstream = (resp.status, *_error_of(resp))  # type: ignore[attr-defined]
    return exc


class RetrievalClient(ServiceClient):
    """Typed calls to the retrieval service: one method per endpoint."""

    async def candidates(
        self, req: CandidatesRequest, *, timeout_s: float, request_id: str | None = None
    ) -> CandidatesResponse:
        return await self.call_model(
            "POST", "/v1/candidates", req, CandidatesResponse,
            timeout_s=timeout_s, request_id=request_id,
        )

    async def similar(
        self,
        item_id: str,
        *,
        k: int,
        mode: str,
        timeout_s: float,
        request_id: str | None,
        filter: ItemFilter | None = None,
        genres: list[str] | None = None,
    ) -> SimilarItems:
        params: dict[str, Any] = {"k": k, "mode": mode}
        if genres:
            params["genres"] = ",".join(genres)
        if filter is not None:
            params["filter"] = filter.model_dump_json(exclude_defaults=True)
        return await self.call_model(
            "GET", f"/v1/items/{quote(item_id, safe='')}/similar", None, SimilarItems,
            params=params, timeout_s=timeout_s, request_id=request_id,
        )

    async def item(self, item_id: str, *, timeout_s: float, request_id: str | None) -> ItemDetail:
        return await self.call_model(
            "GET", f"/v1/items/{quote(item_id, safe='')}", None, ItemDetail,
            timeout_s=timeout_s, request_id=request_id,
        )

    async def search(
        self, q: str, *, limit: int, timeout_s: float, request_id: str | None
    ) -> ItemList:
        return await self.call_model(
            "GET", "/v1/items", None, ItemList,
            params={"q": q, "limit": limit}, timeout_s=timeout_s, request_id=request_id,
        )

    async def add_item(
        self, req: NewItem, *, timeout_s: float, request_id: str | None
    ) -> ItemDetail:
        return await self.call_model(
            "POST", "/v1/items", req, ItemDetail,
            timeout_s=timeout_s, request_id=request_id, idempotent=False,
        )

    async def patch_item(
        self, item_id: str, req: ItemPatch, *, timeout_s: float, request_id: str | None
    ) -> ItemDetail:
        return await self.call_model(
            "PATCH", f"/v1/items/{quote(item_id, safe='')}", req, ItemDetail,
            timeout_s=timeout_s, request_id=request_id,
        )

    async def explain(
        self, req: ExplainRequest, *, timeout_s: float, request_id: str | None
    ) -> ExplainResponse:
        return await self.call_model(
            "POST", "/v1/explain", req, ExplainResponse,
            timeout_s=timeout_s, request_id=request_id,
        )

    async def push_history(
        self, user_id: str, req: HistoryUpdate, *, timeout_s: float, request_id: str | None
    ) -> None:
        """Append items to a user's recent history (not retried: it is not idempotent)."""
        with timing.stage("codec"):
            body = req.model_dump_json().encode()
        await self.send(
            "POST", f"/v1/users/{quote(user_id, safe='')}/history", body=body,
            timeout_s=timeout_s, request_id=request_id, idempotent=False,
        )


#: Candidate fields ranking does not read (display metadata): not sent.
_RANKING_NEEDS_NO = {"columns": {"titles", "years", "genres"}}


class RankingClient(ServiceClient):
    """Typed calls to the ranking service."""

    async def rank(
        self, req: RankRequest, *, timeout_s: float, request_id: str | None = None
    ) -> RankResponse:
        return await self.call_model(
            "POST", "/v1/rank", req, RankResponse,
            timeout_s=timeout_s, request_id=request_id, exclude=_RANKING_NEEDS_NO,
        )
