"""The gateway's public routes (thin: validation here, work in :mod:`core`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticValidationError

from services.gateway import batch
from services.gateway.core import GatewayCore
from services.gateway.deps import ApiKeyDep, CoreDep
from services.gateway.traffic import count_degraded
from shared.contracts.events_v1 import EventAccepted, EventIn
from shared.contracts.filters import parse_query_filter
from shared.contracts.items_v1 import BatchResult, ItemPatch
from shared.contracts.public_v1 import (
    MAX_K,
    ItemDetail,
    ItemId,
    ItemList,
    NewItem,
    RecommendationRequest,
    Recommendations,
    SimilarItems,
    UserId,
)
from shared.serving.app_factory import CONFLICT_RESPONSES, ERROR_RESPONSES, request_id_of

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    401: {"model": ERROR_RESPONSES[404]["model"], "description": "Missing or unknown API key."},
}
router = APIRouter(prefix="/v1", dependencies=[ApiKeyDep], responses=AUTH_ERRORS)
CACHE_HEADER = "X-Hybridrec-Cache"
CACHED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The recommendations.",
        "headers": {
            CACHE_HEADER: {
                "description": "hit: served from the result cache; miss: computed now (and "
                "cached unless degraded); off: no cache (Redis not configured or down).",
                "schema": {"type": "string", "enum": ["hit", "miss", "off"]},
            }
        },
    }
}

UserIdPath = Annotated[UserId, Path()]
ItemIdPath = Annotated[ItemId, Path()]
KQuery = Annotated[int, Query(ge=1, le=MAX_K, description="How many items to return.")]


def _genres(raw: str | None) -> list[str]:
    return [g.strip() for g in (raw or "").split(",") if g.strip()][:50]


IncludeQuery = Annotated[
    list[str] | None,
    Query(
        max_length=50,
        description="Keep items having at least one of the values: `ATTRIBUTE:v1,v2` "
        "(e.g. `categories:fantasy,poetry`); repeatable, every attribute must match; values "
        "match case-insensitively. Unknown attribute: 422 listing the known ones.",
    ),
]
ExcludeQuery = Annotated[
    list[str] | None,
    Query(
        max_length=50,
        description="Drop items having any of the values: `ATTRIBUTE:v1,v2` "
        "(e.g. `authors:Ann Lee`); repeatable.",
    ),
]
WhereQuery = Annotated[
    list[str] | None,
    Query(
        max_length=50,
        description="Numeric range: `ATTRIBUTE<op>NUMBER`, op one of >=, <=, >, <, = "
        "(e.g. `price<=20`, `year>=2000`); repeatable; items without the value fail it. "
        "A range on a categorical attribute is a 422.",
    ),
]


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    tags=["recommendations"],
    summary="Recommendations for a known user",
    operation_id="get_user_recommendations",
    responses=CACHED_RESPONSES,
)
async def user_recommendations(
    request: Request,
    core: CoreDep,
    user_id: UserIdPath,
    k: KQuery = 10,
    exclude_seen: Annotated[bool, Query(description="Leave out items the user has seen.")] = True,
    genres: Annotated[
        str | None,
        Query(
            max_length=2000,
            description="Comma-separated genres to keep (each at most 100 characters; "
            "the first 50 are used).",
        ),
    ] = None,
    explain: Annotated[bool, Query(description="Add short reasons to each item.")] = False,
    include: IncludeQuery = None,
    exclude: ExcludeQuery = None,
    where: WhereQuery = None,
) -> Recommendations:
    """Top-k items for a user known from training or feedback; 404 for an unknown user.

    Filters (`include`, `exclude`, `where`, `genres`) are applied inside retrieval, so k
    items come back whenever k pass them; unavailable items never do. `matched` and
    `fewer_than_k` say when fewer than k passed."""
    flt = parse_query_filter(include, exclude, where)
    try:
        req = RecommendationRequest(
            user_id=user_id, k=k, exclude_seen=exclude_seen, genres=_genres(genres),
            explain=explain, filter=flt,
        )
    except PydanticValidationError as exc:  # e.g. one genre longer than a genre can be
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
    return await _answer(core, req, request)


@router.post(
    "/recommendations",
    response_model=Recommendations,
    tags=["recommendations"],
    summary="Recommendations from recent items, ratings or features",
    operation_id="post_recommendations",
    responses=CACHED_RESPONSES,
)
async def recommendations(
    request: Request, core: CoreDep, body: RecommendationRequest
) -> Recommendations:
    """Anonymous or new users (recent items, ratings, features), or a known user in session."""
    return await _answer(core, body, request)


async def _answer(core: GatewayCore, req: RecommendationRequest, request: Request) -> Any:
    """The answer, cached or computed (``Cache-Control: no-cache``); X-Hybridrec-Cache says."""
    no_cache = "no-cache" in request.headers.get("cache-control", "").lower()
    body, status = await core.recommend_body(req, request_id_of(request), use_cached=not no_cache)
    request.app.state.result_cache_answers.labels(status).inc()
    count_degraded(request.app, body)
    return Response(body, media_type="application/json", headers={CACHE_HEADER: status})


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarItems,
    tags=["items"],
    summary="Items similar to an item",
    operation_id="get_similar_items",
)
async def similar_items(
    request: Request,
    core: CoreDep,
    item_id: ItemIdPath,
    k: KQuery = 10,
    mode: Annotated[
        Literal["content", "collaborative"],
        Query(description="content = BERT neighbours; collaborative = item-tower neighbours."),
    ] = "content",
    genres: Annotated[
        str | None,
        Query(max_length=2000, description="Comma-separated genres to keep (a shorthand, as "
              "for recommendations)."),
    ] = None,
    include: IncludeQuery = None,
    exclude: ExcludeQuery = None,
    where: WhereQuery = None,
) -> SimilarItems:
    """Nearest neighbours of an item by content (BERT) or by collaborative item vectors,
    available and through the filters (searched inside the filtered items)."""
    flt = parse_query_filter(include, exclude, where)
    return await core.items.similar(
        item_id, k=k, mode=mode, request_id=request_id_of(request), flt=flt,
        genres=_genres(genres),
    )


@router.get(
    "/items/{item_id}",
    response_model=ItemDetail,
    tags=["items"],
    summary="One item",
    operation_id="get_item",
)
async def get_item(request: Request, core: CoreDep, item_id: ItemIdPath) -> ItemDetail:
    """An item's title, year, genres, tags and overview."""
    return await core.items.item(item_id, request_id=request_id_of(request))


@router.get(
    "/items",
    response_model=ItemList,
    tags=["items"],
    summary="Search items by title",
    operation_id="search_items",
)
async def search_items(
    request: Request,
    core: CoreDep,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Words of the title.")],
    limit: Annotated[int, Query(ge=1, le=100, description="How many results.")] = 20,
) -> ItemList:
    """Items whose title matches the words of q, best match first."""
    return await core.items.search(q, limit=limit, request_id=request_id_of(request))


@router.post(
    "/items",
    response_model=ItemDetail,
    status_code=201,
    tags=["items"],
    summary="Add a new item",
    operation_id="add_item",
    responses=CONFLICT_RESPONSES,
)
async def add_item(request: Request, core: CoreDep, body: NewItem) -> JSONResponse:
    """Embed a new item from its text; it is recommendable at once (answers its item_id)."""
    item = await core.items.add(body, request_id=request_id_of(request))
    return JSONResponse(item.model_dump(mode="json"), status_code=201)


@router.patch(
    "/items/{item_id}",
    response_model=ItemDetail,
    tags=["items"],
    summary="Change an item's attributes or availability",
    operation_id="patch_item",
)
async def patch_item(
    request: Request, core: CoreDep, item_id: ItemIdPath, body: ItemPatch
) -> ItemDetail:
    """Set attribute values (null removes one) or `available`; the next request sees the
    change (filters, availability, GET /v1/items/{id}), and `hybridrec train
    --include-fresh` folds it into the next bundle. 404 for an unknown item, 422 for an
    unknown attribute or a value of the wrong type."""
    return await core.items.patch(item_id, body, request_id=request_id_of(request))


BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/items:batch",
    response_model=BatchResult,
    tags=["items"],
    summary="Add many items",
    operation_id="add_items_batch",
    openapi_extra=BATCH_BODY,
)
async def add_items_batch(request: Request, core: CoreDep) -> BatchResult:
    """Items as a JSON array or NDJSON (at most 200 rows, within HYBRIDREC_MAX_BODY_BYTES,
    1 MiB by default), each a `POST /v1/items` body. Every row gets its own status: 201
    (item_id), 409 (id taken), 422 (what is wrong), 503 (not stored: retry the row). A row
    is stored whole or not at all; a body that is not JSON/NDJSON, or too many rows, is a
    422 and nothing is stored."""
    return await batch.items_batch(core, await request.body(), request_id_of(request))


@router.post(
    "/events:batch",
    response_model=BatchResult,
    tags=["events"],
    summary="Record many feedback events",
    operation_id="post_events_batch",
    openapi_extra=BATCH_BODY,
)
async def post_events_batch(request: Request, core: CoreDep) -> BatchResult:
    """Events as a JSON array or NDJSON (at most 1000 rows, within HYBRIDREC_MAX_BODY_BYTES),
    each a `POST /v1/users/{user_id}/events` body plus its `user_id`, recorded in order
    through the same path. Every row gets its own status: 202 (event_id), 404 (unknown
    item), 422 (what is wrong), 503 (not stored: retry the row)."""
    return await batch.events_batch(core, await request.body(), request_id_of(request))


@router.post(
    "/users/{user_id}/events",
    response_model=EventAccepted,
    status_code=202,
    tags=["events"],
    summary="Record a feedback event",
    operation_id="post_user_event",
)
async def post_event(
    request: Request, core: CoreDep, user_id: UserIdPath, body: EventIn
) -> JSONResponse:
    """Store a rating, view or click durably (202), update recent history and the cached vector."""
    accepted = await core.feedback.record_event(user_id, body, request_id_of(request))
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)
