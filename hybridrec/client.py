"""A small typed Python client for hybridrec's public gateway (``/v1``).

:class:`HybridrecClient` (sync) and :class:`AsyncHybridrecClient` (async) have the
same methods and return the shared pydantic models of :mod:`shared.contracts.public_v1`.
Both build requests and parse answers through :class:`_Call`, so they differ only
in how a request is sent. Every error (an error answer of the gateway, a network
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
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from shared.contracts.errors import HybridrecError
from shared.contracts.ids import id_problem
from shared.contracts.items_v1 import BatchResult
from shared.contracts.public_v1 import (
    EventAccepted,
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

M = TypeVar("M", bound=BaseModel)
SimilarMode = Literal["content", "collaborative"]
EventType = Literal[
    "view", "click", "add_to_cart", "purchase", "like", "rating", "dislike", "hide"
]
"""Feedback event types; ``dislike`` and ``hide`` remove the item from the user's
recommendations from the next request on."""


class HybridrecClientError(HybridrecError):
    """The gateway answered with an error, or could not be reached.

    Attributes:
        status: The HTTP status (``None`` when no answer arrived).
        code: The shared error body's code (``not_found``, ``invalid_request``, ...),
            or ``connection_error`` / ``timeout`` / ``invalid_response`` on the client side.
        message: What went wrong, as the gateway said it.
        request_id: The request id the gateway gave (for its logs), if any.
        details: The error body's details (e.g. the fields that failed validation).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        code: str,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.details = details or {}
        if status is not None:
            self.http_status = status

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no answer"
        rid = f", request {self.request_id}" if self.request_id else ""
        return f"{self.code} ({where}{rid}): {self.message}"


@dataclass(frozen=True)
class _Call(Generic[M]):
    """One request to the gateway and the model its answer parses into."""

    method: str
    path: str
    model: type[M]
    params: dict[str, Any] | None = None
    json: Any = None
    ok: tuple[int, ...] = field(default=(200,))

    def parse(self, response: httpx.Response) -> M:
        """The answer as ``model``; raises :class:`HybridrecClientError` on an error answer."""
        if response.status_code not in self.ok:
            raise _error_from(response)
        try:
            return self.model.model_validate_json(response.content)
        except PydanticValidationError as exc:
            raise HybridrecClientError(
                f"{self.method} {self.path} answered {response.status_code} with a body that "
                f"is not a {self.model.__name__}: {exc.errors()[:3]}; is the base URL the "
                "hybridrec gateway, and is it the same API version as this client?",
                status=response.status_code,
                code="invalid_response",
                request_id=response.headers.get("x-request-id"),
            ) from exc


def _error_from(response: httpx.Response) -> HybridrecClientError:
    """The shared error body (``{"error": {code, message, details}, "request_id"}``) as an error."""
    rid = response.headers.get("x-request-id")
    try:
        body = response.json()
        err = body["error"]
        return HybridrecClientError(
            str(err["message"]),
            status=response.status_code,
            code=str(err.get("code") or "http_error"),
            request_id=body.get("request_id") or rid,
            details=err.get("details") or {},
        )
    except (ValueError, KeyError, TypeError):
        text = response.text[:200]
        return HybridrecClientError(
            f"HTTP {response.status_code} without hybridrec's error body: {text!r}",
            status=response.status_code,
            code="http_error",
            request_id=rid,
        )


def _transport_error(call: _Call[Any], base_url: str, exc: httpx.HTTPError) -> HybridrecClientError:
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
    return HybridrecClientError(
        f"{call.method} {base_url}{call.path} failed: {type(exc).__name__}: {exc}; check that "
        "the gateway runs at this base URL, or raise the client's timeout",
        status=None,
        code=code,
    )


def _dump(body: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", exclude_none=True)
    return dict(body)


def _id(value: str | int, what: str) -> str:
    """An id as the API takes it (an ``int`` as its decimal text), checked."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    problem = id_problem(text)
    if problem is not None:
        raise HybridrecClientError(f"{what} {value!r}: {problem}", status=None,
                                   code="invalid_request")
    return str(text)


def _seg(value: str | int, what: str) -> str:
    """An id as one URL path segment."""
    return quote(_id(value, what), safe="")


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


Values = Mapping[str, Sequence[str]]


def _filter_params(
    include: Values | None, exclude: Values | None, where: Sequence[str] | None
) -> dict[str, Any]:
    """The GET filter parameters: ``include=ATTR:v1,v2``, ``exclude=...``, ``where=ATTR<=N``."""
    params: dict[str, Any] = {}
    for name, given in (("include", include), ("exclude", exclude)):
        if given:
            params[name] = [f"{attr}:{','.join(vals)}" for attr, vals in given.items()]
    if where:
        params["where"] = list(where)
    return params


class _Calls:
    """Request building shared by the sync and async clients (no I/O here)."""

    @staticmethod
    def recommend_for_user(
        user_id: str | int, k: int, exclude_seen: bool, genres: Sequence[str] | None, explain: bool,
        filters: dict[str, Any] | None = None,
    ) -> _Call[Recommendations]:
        params: dict[str, Any] = {"k": k, "exclude_seen": exclude_seen, "explain": explain}
        params.update(filters or {})
        if genres:
            params["genres"] = ",".join(genres)
        path = f"/v1/users/{_seg(user_id, 'user_id')}/recommendations"
        return _Call("GET", path, Recommendations, params)

    @staticmethod
    def recommend(request: RecommendationRequest | Mapping[str, Any]) -> _Call[Recommendations]:
        return _Call("POST", "/v1/recommendations", Recommendations, json=_dump(request))

    @staticmethod
    def similar_items(
        item_id: str | int, k: int, mode: SimilarMode, filters: dict[str, Any] | None = None
    ) -> _Call[SimilarItems]:
        return _Call(
            "GET", f"/v1/items/{_seg(item_id, 'item_id')}/similar", SimilarItems,
            {"k": k, "mode": mode, **(filters or {})},
        )

    @staticmethod
    def patch_item(
        item_id: str | int, attributes: Mapping[str, Any] | None, available: bool | None
    ) -> _Call[ItemDetail]:
        body = _drop_none({"attributes": None if attributes is None else dict(attributes),
                           "available": available})
        return _Call("PATCH", f"/v1/items/{_seg(item_id, 'item_id')}", ItemDetail, json=body)

    @staticmethod
    def batch(path: str, rows: Sequence[BaseModel | Mapping[str, Any]]) -> _Call[BatchResult]:
        return _Call("POST", path, BatchResult, json=[_dump(r) for r in rows])

    @staticmethod
    def get_item(item_id: str | int) -> _Call[ItemDetail]:
        return _Call("GET", f"/v1/items/{_seg(item_id, 'item_id')}", ItemDetail)

    @staticmethod
    def search_items(q: str, limit: int) -> _Call[ItemList]:
        return _Call("GET", "/v1/items", ItemList, {"q": q, "limit": limit})

    @staticmethod
    def post_event(
        user_id: str | int,
        item_id: str | int,
        type: EventType,
        rating: float | None,
        timestamp: int | None,
    ) -> _Call[EventAccepted]:
        body = _drop_none(
            {"item_id": _id(item_id, "item_id"), "type": type, "rating": rating,
             "timestamp": timestamp}
        )
        return _Call(
            "POST", f"/v1/users/{_seg(user_id, 'user_id')}/events", EventAccepted, json=body,
            ok=(202,),
        )

    @staticmethod
    def add_item(
        item: str | NewItem | Mapping[str, Any],
        genres: Sequence[str] | None,
        year: int | None,
        overview: str | None,
        tags: Sequence[str] | None,
        item_id: str | int | None = None,
    ) -> _Call[ItemDetail]:
        if not isinstance(item, str):
            body = _dump(item)
        else:
            fields = {"title": item, "genres": genres, "year": year, "overview": overview}
            own = None if item_id is None else _id(item_id, "item_id")
            body = _drop_none({**fields, "tags": tags, "item_id": own})
            body.update({k: list(v) for k, v in body.items() if k in ("genres", "tags")})
        return _Call("POST", "/v1/items", ItemDetail, json=body, ok=(201,))

    @staticmethod
    def user_history(user_id: str | int, limit: int) -> _Call[UserHistory]:
        path = f"/v1/users/{_seg(user_id, 'user_id')}/history"
        return _Call("GET", path, UserHistory, {"limit": limit})

    @staticmethod
    def status() -> _Call[Status]:
        return _Call("GET", "/v1/status", Status)

    @staticmethod
    def health() -> _Call[Health]:
        # Readiness answers 503 with a Health body saying which check failed: return it.
        return _Call("GET", "/health/ready", Health, ok=(200, 503))


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "hybridrec-client/1"}
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


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
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout
        )

    def _run(self, call: _Call[M]) -> M:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.json
            )
        except httpx.HTTPError as exc:
            raise _transport_error(call, self.base_url, exc) from exc
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
        return self._run(_Calls.recommend_for_user(
            user_id, k, exclude_seen, genres, explain, _filter_params(include, exclude, where)))

    def recommend(self, request: RecommendationRequest | Mapping[str, Any]) -> Recommendations:
        """Recommendations from a full request body (``POST /v1/recommendations``)."""
        return self._run(_Calls.recommend(request))

    def similar_items(
        self, item_id: str | int, k: int = 10, mode: SimilarMode = "content", *,
        include: Values | None = None, exclude: Values | None = None,
        where: Sequence[str] | None = None,
    ) -> SimilarItems:
        """Neighbours of an item by content or collaborative vectors (filtered like
        :meth:`recommend_for_user`)."""
        return self._run(_Calls.similar_items(
            item_id, k, mode, _filter_params(include, exclude, where)))

    def patch_item(
        self, item_id: str | int, *, attributes: Mapping[str, Any] | None = None,
        available: bool | None = None,
    ) -> ItemDetail:
        """Change an item's attributes or availability (``PATCH /v1/items/{item_id}``)."""
        return self._run(_Calls.patch_item(item_id, attributes, available))

    def add_items(self, items: Sequence[NewItem | Mapping[str, Any]]) -> BatchResult:
        """Add many items (``POST /v1/items:batch``); each row gets its own status."""
        return self._run(_Calls.batch("/v1/items:batch", items))

    def post_events(self, events: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Record many events, each with its ``user_id`` (``POST /v1/events:batch``)."""
        return self._run(_Calls.batch("/v1/events:batch", events))

    def get_item(self, item_id: str | int) -> ItemDetail:
        """One catalogue item (``GET /v1/items/{item_id}``)."""
        return self._run(_Calls.get_item(item_id))

    def search_items(self, q: str, limit: int = 20) -> ItemList:
        """Items whose title matches the words of ``q``, best match first."""
        return self._run(_Calls.search_items(q, limit))

    def post_event(
        self,
        user_id: str | int,
        item_id: str | int,
        type: EventType = "view",
        rating: float | None = None,
        timestamp: int | None = None,
    ) -> EventAccepted:
        """Record a feedback event (a ``rating`` event needs ``rating``)."""
        return self._run(_Calls.post_event(user_id, item_id, type, rating, timestamp))

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
        return self._run(_Calls.add_item(item, genres, year, overview, tags, item_id))

    def user_history(self, user_id: str | int, limit: int = 50) -> UserHistory:
        """A user's feedback events, then the rest of their history, newest first."""
        return self._run(_Calls.user_history(user_id, limit))

    def status(self) -> Status:
        """Services' readiness, the live bundle and the gateway's last-minute traffic."""
        return self._run(_Calls.status())

    def health(self) -> Health:
        """The gateway's readiness (``status`` is ``not_ready`` when a check fails)."""
        return self._run(_Calls.health())

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
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout
        )

    async def _run(self, call: _Call[M]) -> M:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json
            )
        except httpx.HTTPError as exc:
            raise _transport_error(call, self.base_url, exc) from exc
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
        return await self._run(_Calls.recommend_for_user(
            user_id, k, exclude_seen, genres, explain, _filter_params(include, exclude, where)))

    async def recommend(
        self, request: RecommendationRequest | Mapping[str, Any]
    ) -> Recommendations:
        """Recommendations from a full request body (``POST /v1/recommendations``)."""
        return await self._run(_Calls.recommend(request))

    async def similar_items(
        self, item_id: str | int, k: int = 10, mode: SimilarMode = "content", *,
        include: Values | None = None, exclude: Values | None = None,
        where: Sequence[str] | None = None,
    ) -> SimilarItems:
        """Neighbours of an item by content or collaborative vectors (filtered)."""
        return await self._run(_Calls.similar_items(
            item_id, k, mode, _filter_params(include, exclude, where)))

    async def patch_item(
        self, item_id: str | int, *, attributes: Mapping[str, Any] | None = None,
        available: bool | None = None,
    ) -> ItemDetail:
        """Change an item's attributes or availability (``PATCH /v1/items/{item_id}``)."""
        return await self._run(_Calls.patch_item(item_id, attributes, available))

    async def add_items(self, items: Sequence[NewItem | Mapping[str, Any]]) -> BatchResult:
        """Add many items (``POST /v1/items:batch``); each row gets its own status."""
        return await self._run(_Calls.batch("/v1/items:batch", items))

    async def post_events(self, events: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Record many events, each with its ``user_id`` (``POST /v1/events:batch``)."""
        return await self._run(_Calls.batch("/v1/events:batch", events))

    async def get_item(self, item_id: str | int) -> ItemDetail:
        """One catalogue item (``GET /v1/items/{item_id}``)."""
        return await self._run(_Calls.get_item(item_id))

    async def search_items(self, q: str, limit: int = 20) -> ItemList:
        """Items whose title matches the words of ``q``, best match first."""
        return await self._run(_Calls.search_items(q, limit))

    async def post_event(
        self,
        user_id: str | int,
        item_id: str | int,
        type: EventType = "view",
        rating: float | None = None,
        timestamp: int | None = None,
    ) -> EventAccepted:
        """Record a feedback event (a ``rating`` event needs ``rating``)."""
        return await self._run(_Calls.post_event(user_id, item_id, type, rating, timestamp))

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
        return await self._run(_Calls.add_item(item, genres, year, overview, tags, item_id))

    async def user_history(self, user_id: str | int, limit: int = 50) -> UserHistory:
        """A user's feedback events, then the rest of their history, newest first."""
        return await self._run(_Calls.user_history(user_id, limit))

    async def status(self) -> Status:
        """Services' readiness, the live bundle and the gateway's last-minute traffic."""
        return await self._run(_Calls.status())

    async def health(self) -> Health:
        """The gateway's readiness (``status`` is ``not_ready`` when a check fails)."""
        return await self._run(_Calls.health())

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHybridrecClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
