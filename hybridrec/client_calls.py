"""Each gateway call of :mod:`hybridrec.client`: the request, how its answer parses, the error.

:class:`Calls` builds a :class:`Call` (method, path, parameters, body and the pydantic model
of the answer) per endpoint with no I/O, so the sync and async clients differ only in how a
request is sent. Every error (an error answer of the gateway, a network failure, a malformed
answer, an invalid id before sending) is a :class:`HybridrecClientError`, importable from
:mod:`hybridrec.client` as documented.
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
from shared.contracts.events_v1 import EventAccepted, EventType
from shared.contracts.ids import id_problem
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

M = TypeVar("M", bound=BaseModel)
SimilarMode = Literal["content", "collaborative"]


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
class Call(Generic[M]):
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


def transport_error(call: Call[Any], base_url: str, exc: httpx.HTTPError) -> HybridrecClientError:
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


def filter_params(
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


class Calls:
    """Request building shared by the sync and async clients (no I/O here)."""

    @staticmethod
    def recommend_for_user(
        user_id: str | int, k: int, exclude_seen: bool, genres: Sequence[str] | None, explain: bool,
        filters: dict[str, Any] | None = None,
    ) -> Call[Recommendations]:
        params: dict[str, Any] = {"k": k, "exclude_seen": exclude_seen, "explain": explain}
        params.update(filters or {})
        if genres:
            params["genres"] = ",".join(genres)
        path = f"/v1/users/{_seg(user_id, 'user_id')}/recommendations"
        return Call("GET", path, Recommendations, params)

    @staticmethod
    def recommend(request: RecommendationRequest | Mapping[str, Any]) -> Call[Recommendations]:
        return Call("POST", "/v1/recommendations", Recommendations, json=_dump(request))

    @staticmethod
    def similar_items(
        item_id: str | int, k: int, mode: SimilarMode, filters: dict[str, Any] | None = None
    ) -> Call[SimilarItems]:
        return Call(
            "GET", f"/v1/items/{_seg(item_id, 'item_id')}/similar", SimilarItems,
            {"k": k, "mode": mode, **(filters or {})},
        )

    @staticmethod
    def patch_item(
        item_id: str | int, attributes: Mapping[str, Any] | None, available: bool | None
    ) -> Call[ItemDetail]:
        body = _drop_none({"attributes": None if attributes is None else dict(attributes),
                           "available": available})
        return Call("PATCH", f"/v1/items/{_seg(item_id, 'item_id')}", ItemDetail, json=body)

    @staticmethod
    def batch(path: str, rows: Sequence[BaseModel | Mapping[str, Any]]) -> Call[BatchResult]:
        return Call("POST", path, BatchResult, json=[_dump(r) for r in rows])

    @staticmethod
    def get_item(item_id: str | int) -> Call[ItemDetail]:
        return Call("GET", f"/v1/items/{_seg(item_id, 'item_id')}", ItemDetail)

    @staticmethod
    def search_items(q: str, limit: int) -> Call[ItemList]:
        return Call("GET", "/v1/items", ItemList, {"q": q, "limit": limit})

    @staticmethod
    def post_event(
        user_id: str | int,
        item_id: str | int,
        type: EventType,
        rating: float | None,
        timestamp: int | None,
    ) -> Call[EventAccepted]:
        body = _drop_none(
            {"item_id": _id(item_id, "item_id"), "type": type, "rating": rating,
             "timestamp": timestamp}
        )
        return Call(
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
    ) -> Call[ItemDetail]:
        if not isinstance(item, str):
            body = _dump(item)
        else:
            fields = {"title": item, "genres": genres, "year": year, "overview": overview}
            own = None if item_id is None else _id(item_id, "item_id")
            body = _drop_none({**fields, "tags": tags, "item_id": own})
            body.update({k: list(v) for k, v in body.items() if k in ("genres", "tags")})
        return Call("POST", "/v1/items", ItemDetail, json=body, ok=(201,))

    @staticmethod
    def user_history(user_id: str | int, limit: int) -> Call[UserHistory]:
        path = f"/v1/users/{_seg(user_id, 'user_id')}/history"
        return Call("GET", path, UserHistory, {"limit": limit})

    @staticmethod
    def status() -> Call[Status]:
        return Call("GET", "/v1/status", Status)

    @staticmethod
    def health() -> Call[Health]:
        # Readiness answers 503 with a Health body saying which check failed: return it.
        return Call("GET", "/health/ready", Health, ok=(200, 503))


def request_headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "hybridrec-client/1"}
    if api_key:
        headers["X-API-Key"] = api_key
    return headers
