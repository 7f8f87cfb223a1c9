"""The gateway's retrieval and ranking clients, answered inside this process.

:class:`LocalRetrieval` and :class:`LocalRanking` are the HTTP clients' in-process twins:
the gateway's code calls the same typed methods and gets the same models and the same
errors, but each call runs the function the service's route would have run, on the
service's current engine (``app.state.engine``, so a hot reload is seen at once), with
no socket, no HTTP framework and no JSON in between. That is what the split costs per
answer (two hops, 200 candidates encoded and parsed twice); ``docs/performance.md``
measures it.

Errors keep the HTTP contract's meaning: a mistake of the caller (a 4xx
:class:`~shared.contracts.errors.HybridrecError`) reaches the gateway as it is; a
failure of the service (not loaded yet, Redis down, a bug) becomes
:class:`~shared.contracts.errors.DependencyUnavailableError`, so the gateway degrades
exactly as it does when a remote service fails.

The per-call timeouts the gateway passes have nothing to cut here: the work runs on this
process's event loop, as it would inside the service behind an HTTP hop; the gateway's
deadline still keeps a call from starting once it has passed, and its in-flight limit
still sheds the excess.

Operations calls (readiness, bundle status, hot reload) are rare and go through the
service's own ASGI app with httpx's in-process transport, so they run the very same
routes (admin key, checks, reload) as over the network.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

from services.ranking.engine import RankingEngine
from services.retrieval import items, pipeline
from shared.contracts.errors import DependencyUnavailableError, HybridrecError
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
from shared.serving.app_factory import loaded_engine
from shared.serving.clients import Instance, RankingClient, Response, RetrievalClient, query_params

log = logging.getLogger("hybridrec.combined")
T = TypeVar("T")

#: The one instance of an in-process service (what admin and status pages name).
LOCAL_URL = "local"


class _InProcess:
    """What both local clients share: the service's app, its engine, error mapping."""

    name: str
    app: FastAPI
    _asgi: httpx.AsyncClient | None

    def _engine(self) -> Any:
        return loaded_engine(self.app, self.name)

    async def _call(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(engine)`` timed as the service's stage, its failures mapped as over HTTP."""
        try:
            with timing.nested(self.name):
                return await fn(self._engine())
        except HybridrecError as exc:
            if exc.http_status < 500:
                raise  # the caller's mistake, as a 4xx would say
            raise DependencyUnavailableError(
                f"{self.name} failed: {exc.message}", dependency=self.name
            ) from exc
        except Exception as exc:  # a bug in the service: the gateway degrades, as on a 500
            log.exception("%s failed in process", self.name)
            raise DependencyUnavailableError(
                f"{self.name} failed: {type(exc).__name__}: {exc}", dependency=self.name
            ) from exc

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
        """One request to the service's own ASGI app (operations calls only)."""
        if self._asgi is None:
            self._asgi = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://in-process"
            )
        resp = await self._asgi.request(
            method, path, params=query_params(params), content=body, headers=headers,
            timeout=timeout_s,
        )  # fmt: skip
        hdrs: Mapping[str, str] = {k.lower(): v for k, v in resp.headers.items()}
        return Response(resp.status_code, resp.content, hdrs, instance.url)

    async def _refresh_instances(self) -> None:
        """One instance, always: this process."""

    async def close(self) -> None:
        """Close the in-process transport (the service's app is stopped by its lifespan)."""
        if self._asgi is not None:
            await self._asgi.aclose()
            self._asgi = None


async def _done(value: T) -> T:
    return value


class LocalRetrieval(_InProcess, RetrievalClient):
    """:class:`RetrievalClient`'s calls answered by the retrieval app in this process."""

    def __init__(self, app: FastAPI, *, timeout_s: float) -> None:
        RetrievalClient.__init__(self, "retrieval", LOCAL_URL, timeout_s=timeout_s)
        self.app = app
        self._asgi = None

    async def candidates(
        self, req: CandidatesRequest, *, timeout_s: float, request_id: str | None = None
    ) -> CandidatesResponse:
        return await self._call(lambda e: pipeline.candidates(e, req))

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
        wanted = [g.strip() for g in (genres or []) if g.strip()][:50]
        return await self._call(lambda e: items.similar(e, item_id, k, mode, filter, wanted))

    async def item(self, item_id: str, *, timeout_s: float, request_id: str | None) -> ItemDetail:
        return await self._call(lambda e: _done(items.get_item(e, item_id)))

    async def search(
        self, q: str, *, limit: int, timeout_s: float, request_id: str | None
    ) -> ItemList:
        return await self._call(lambda e: _done(ItemList(items=items.search(e, q, limit))))

    async def add_item(
        self, req: NewItem, *, timeout_s: float, request_id: str | None
    ) -> ItemDetail:
        return await self._call(lambda e: items.add_item(e, req))

    async def patch_item(
        self, item_id: str, req: ItemPatch, *, timeout_s: float, request_id: str | None
    ) -> ItemDetail:
        return await self._call(lambda e: items.patch_item(e, item_id, req))

    async def explain(
        self, req: ExplainRequest, *, timeout_s: float, request_id: str | None
    ) -> ExplainResponse:
        return await self._call(lambda e: _done(items.explain(e, req)))

    async def push_history(
        self, user_id: str, req: HistoryUpdate, *, timeout_s: float, request_id: str | None
    ) -> None:
        await self._call(
            lambda e: items.push_history(
                e, user_id, req.item_ids, seen_only=req.seen_only, hidden=req.hidden
            )
        )


class LocalRanking(_InProcess, RankingClient):
    """:class:`RankingClient`'s call answered by the ranking app in this process."""

    def __init__(self, app: FastAPI, *, timeout_s: float) -> None:
        RankingClient.__init__(self, "ranking", LOCAL_URL, timeout_s=timeout_s)
        self.app = app
        self._asgi = None

    async def rank(
        self, req: RankRequest, *, timeout_s: float, request_id: str | None = None
    ) -> RankResponse:
        def score(engine: RankingEngine) -> Awaitable[RankResponse]:
            return _done(engine.rank(req))

        return await self._call(score)
