"""The gateway's public routes (thin: validation here, work in :mod:`core`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError as PydanticValidationError

from services.gateway.core import GatewayCore
from services.gateway.deps import ApiKeyDep, CoreDep
from services.gateway.traffic import count_degraded
from shared.contracts.public_v1 import (
    MAX_K,
    EventAccepted,
    EventIn,
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
) -> Recommendations:
    """Top-k items for a user known from training or feedback; 404 for an unknown user."""
    try:
        req = RecommendationRequest(
            user_id=user_id, k=k, exclude_seen=exclude_seen, genres=_genres(genres), explain=explain
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
) -> SimilarItems:
    """Nearest neighbours of an item by content (BERT) or by collaborative item vectors."""
    return await core.items.similar(item_id, k=k, mode=mode, request_id=request_id_of(request))


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
    accepted = await core.record_event(user_id, body, request_id_of(request))
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202)
