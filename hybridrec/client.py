"""A small typed Python client for hybridrec's public gateway (``/v1``).

:class:`HybridrecClient` (sync) and :class:`AsyncHybridrecClient` (async) have the
same methods and return the shared pydantic models of :mod:`shared.contracts.public_v1`.
Both build requests and parse answers through :class:`hybridrec.client_calls.Call`, so they
differ only in how a request is sent. Every error (an error answer of the gateway, a network
failure, a malformed answer) raises :class:`HybridrecClientError`.

Example::

    from hybridrec.client import HybridrecClient

    with HybridrecClient("http://127.0.0.1:8000", api_key="secret") as client:
        recs = client.recommend_for_user("42", k=5, genres=["Comedy"])
        for item in recs.items:
            print(item.rank, item.item_id, item.title, item.score)

User and item ids are strings (:mod:`shared.contracts.ids`: 1 to 128 characters of
``A-Z a-z 0-9 . _ : @ -``); a method also takes an ``int`` and sends its decimal text. An id
outside the alphabet raises :class:`HybridrecClientError` (``invalid_request``) before any
request is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from hybridrec.client_calls import (
    Call,
    Calls,
    HybridrecClientError,
    M,
    SimilarMode,
    Values,
    filter_params,
    request_headers,
    transport_error,
)
from shared.contracts.events_v1 import EventAccepted, EventType
from shared.contracts.items_v1 import BatchResult
from shared.contracts.public_v1 import (
    Health,
    ItemDetail,
    ItemList,
    NewItem,
    RecommendationRequest,
    Recommendations,
    SimilarItems,
)
from shared.contracts.status_v1 import Status, UserHistory

__all__ = ["AsyncHybridrecClient", "HybridrecClient", "HybridrecClientError"]


class HybridrecClient:
    """Synchronous client of the gateway.

    Args:
        base_url: The gateway's root URL, e.g. ``http://127.0.0.1:8000``.
        api_key: Sent as ``X-API-Key`` when given.
        timeout: Seconds per request.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=request_headers(api_key), timeout=timeout
        )

    def _run(self, call: Call[M]) -> M:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json
            )
        except httpx.HTTPError as exc:
            raise transport_error(call, self.base_url, exc) from exc
        return call.parse(response)

    def recommend_for_user(
        self,
        user_id: str | int,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        genres: Sequence[str] | None = None,
        explain: bool = False,
        include: Values | None = None,
        exclude: Values | None = None,
        where: Sequence[str] | None = None,
    ) -> Recommendations:
        """Top-k items for a known user (``GET /v1/users/{user_id}/recommendations``).

        ``include={"categories": ["fantasy"]}`` keeps items with one of the values,
        ``exclude={...}`` drops items with any, ``where=["price<=20"]`` keeps a range.
        """
        return self._run(Calls.recommend_for_user(
            user_id, k, exclude_seen, genres, explain, filter_params(include, exclude, where)))

    def recommend(self, request: RecommendationRequest | Mapping[str, Any]) -> Recommendations:
        """Recommendations from a full request body (``POST /v1/recommendations``)."""
        return self._run(Calls.recommend(request))

    def similar_items(
        self, item_id: str | int, k: int = 10, mode: SimilarMode = "content", *,
        include: Values | None = None, exclude: Values | None = None,
        where: Sequence[str] | None = None,
    ) -> SimilarItems:
        """Neighbours of an item by content or collaborative vectors (filtered like
        :meth:`recommend_for_user`)."""
        return self._run(Calls.similar_items(
            item_id, k, mode, filter_params(include, exclude, where)))

    def patch_item(
        self, item_id: str | int, *, attributes: Mapping[str, Any] | None = None,
        available: bool | None = None,
    ) -> ItemDetail:
        """Change an item's attributes or availability (``PATCH /v1/items/{item_id}``)."""
        return self._run(Calls.patch_item(item_id, attributes, available))

    def add_items(self, items: Sequence[NewItem | Mapping[str, Any]]) -> BatchResult:
        """Add many items (``POST /v1/items:batch``); each row gets its own status."""
        return self._run(Calls.batch("/v1/items:batch", items))

    def post_events(self, events: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Record many events, each with its ``user_id`` (``POST /v1/events:batch``)."""
        return self._run(Calls.batch("/v1/events:batch", events))

    def get_item(self, item_id: str | int) -> ItemDetail:
        """One catalogue item (``GET /v1/items/{item_id}``)."""
        return self._run(Calls.get_item(item_id))

    def search_items(self, q: str, limit: int = 20) -> ItemList:
        """Items whose title matches the words of ``q``, best match first."""
        return self._run(Calls.search_items(q, limit))

    def post_event(
        self,
        user_id: str | int,
        item_id: str | int,
        type: EventType = "view",
        rating: float | None = None,
        timestamp: int | None = None,
    ) -> EventAccepted:
        """Record a feedback event (a ``rating`` event needs ``rating``)."""
        return self._run(Calls.post_event(user_id, item_id, type, rating, timestamp))

    def add_item(
        self,
        item: str | NewItem | Mapping[str, Any],
        *,
        genres: Sequence[str] | None = None,
        year: int | None = None,
        overview: str | None = None,
        tags: Sequence[str] | None = None,
        item_id: str | int | None = None,
    ) -> ItemDetail:
        """Add an item: its title plus keyword fields, or a whole ``NewItem``/dict.

        ``item_id``: the item's id in your catalogue (409 if taken); None: one is assigned.
        """
        return self._run(Calls.add_item(item, genres, year, overview, tags, item_id))

    def user_history(self, user_id: str | int, limit: int = 50) -> UserHistory:
        """A user's feedback events, then the rest of their history, newest first."""
        return self._run(Calls.user_history(user_id, limit))

    def status(self) -> Status:
        """Services' readiness, the live bundle and the gateway's last-minute traffic."""
        return self._run(Calls.status())

    def health(self) -> Health:
        """The gateway's readiness (``status`` is ``not_ready`` when a check fails)."""
        return self._run(Calls.health())

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HybridrecClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncHybridrecClient:
    """Asynchronous client of the gateway; same methods as :class:`HybridrecClient`.

    Args:
        base_url: The gateway's root URL, e.g. ``http://127.0.0.1:8000``.
        api_key: Sent as ``X-API-Key`` when given.
        timeout: Seconds per request.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=request_headers(api_key), timeout=timeout
        )

    async def _run(self, call: Call[M]) -> M:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json
            )
        except httpx.HTTPError as exc:
            raise transport_error(call, self.base_url, exc) from exc
        return call.parse(response)

    async def recommend_for_user(
        self,
        user_id: str | int,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        genres: Sequence[str] | None = None,
        explain: bool = False,
        include: Values | None = None,
        exclude: Values | None = None,
        where: Sequence[str] | None = None,
    ) -> Recommendations:
        """Top-k items for a known user (``GET /v1/users/{user_id}/recommendations``)."""
        return await self._run(Calls.recommend_for_user(
            user_id, k, exclude_seen, genres, explain, filter_params(include, exclude, where)))

    async def recommend(
        self, request: RecommendationRequest | Mapping[str, Any]
    ) -> Recommendations:
        """Recommendations from a full request body (``POST /v1/recommendations``)."""
        return await self._run(Calls.recommend(request))

    async def similar_items(
        self, item_id: str | int, k: int = 10, mode: SimilarMode = "content", *,
        include: Values | None = None, exclude: Values | None = None,
        where: Sequence[str] | None = None,
    ) -> SimilarItems:
        """Neighbours of an item by content or collaborative vectors (filtered)."""
        return await self._run(Calls.similar_items(
            item_id, k, mode, filter_params(include, exclude, where)))

    async def patch_item(
        self, item_id: str | int, *, attributes: Mapping[str, Any] | None = None,
        available: bool | None = None,
    ) -> ItemDetail:
        """Change an item's attributes or availability (``PATCH /v1/items/{item_id}``)."""
        return await self._run(Calls.patch_item(item_id, attributes, available))

    async def add_items(self, items: Sequence[NewItem | Mapping[str, Any]]) -> BatchResult:
        """Add many items (``POST /v1/items:batch``); each row gets its own status."""
        return await self._run(Calls.batch("/v1/items:batch", items))

    async def post_events(self, events: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Record many events, each with its ``user_id`` (``POST /v1/events:batch``)."""
        return await self._run(Calls.batch("/v1/events:batch", events))

    async def get_item(self, item_id: str | int) -> ItemDetail:
        """One catalogue item (``GET /v1/items/{item_id}``)."""
        return await self._run(Calls.get_item(item_id))

    async def search_items(self, q: str, limit: int = 20) -> ItemList:
        """Items whose title matches the words of ``q``, best match first."""
        return await self._run(Calls.search_items(q, limit))

    async def post_event(
        self,
        user_id: str | int,
        item_id: str | int,
        type: EventType = "view",
        rating: float | None = None,
        timestamp: int | None = None,
    ) -> EventAccepted:
        """Record a feedback event (a ``rating`` event needs ``rating``)."""
        return await self._run(Calls.post_event(user_id, item_id, type, rating, timestamp))

    async def add_item(
        self,
        item: str | NewItem | Mapping[str, Any],
        *,
        genres: Sequence[str] | None = None,
        year: int | None = None,
        overview: str | None = None,
        tags: Sequence[str] | None = None,
        item_id: str | int | None = None,
    ) -> ItemDetail:
        """Add an item: its title plus keyword fields, or a whole ``NewItem``/dict."""
        return await self._run(Calls.add_item(item, genres, year, overview, tags, item_id))

    async def user_history(self, user_id: str | int, limit: int = 50) -> UserHistory:
        """A user's feedback events, then the rest of their history, newest first."""
        return await self._run(Calls.user_history(user_id, limit))

    async def status(self) -> Status:
        """Services' readiness, the live bundle and the gateway's last-minute traffic."""
        return await self._run(Calls.status())

    async def health(self) -> Health:
        """The gateway's readiness (``status`` is ``not_ready`` when a check fails)."""
        return await self._run(Calls.health())

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHybridrecClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
