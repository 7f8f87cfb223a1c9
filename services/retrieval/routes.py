"""Retrieval's internal routes (called by the gateway)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError

from services.retrieval import items, pipeline
from services.retrieval.deps import EngineDep
from shared.contracts.errors import ValidationError
from shared.contracts.filters import ItemFilter
from shared.contracts.internal_v1 import (
    CandidatesRequest,
    CandidatesResponse,
    ExplainRequest,
    ExplainResponse,
    HistoryUpdate,
    NewItemRequest,
)
from shared.contracts.items_v1 import ItemPatch
from shared.contracts.public_v1 import MAX_K, ItemDetail, ItemId, ItemList, SimilarItems, UserId
from shared.serving.app_factory import CONFLICT_RESPONSES, ERROR_RESPONSES

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
ItemIdPath = Annotated[ItemId, Path()]


@router.post(
    "/candidates",
    response_model=CandidatesResponse,
    tags=["retrieval"],
    summary="Candidates for a user",
    operation_id="retrieval_candidates",
)
async def candidates(engine: EngineDep, body: CandidatesRequest) -> Response:
    """Merged two-tower, neighbour-table, content and popular candidates, best first."""
    # Serialised here, once: FastAPI would dump, validate and encode the model again.
    result = await pipeline.candidates(engine, body)
    return Response(result.model_dump_json(), media_type="application/json")


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarItems,
    tags=["items"],
    summary="Similar items",
    operation_id="retrieval_similar_items",
)
async def similar(
    engine: EngineDep,
    item_id: ItemIdPath,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    mode: Literal["content", "collaborative"] = "content",
    filter: Annotated[
        str | None,
        # Bounded so that the URL, %-encoded (up to 12 bytes a character), stays under the
        # HTTP server's request-line limit: longer is a 422 naming this bound, not a bare 400.
        Query(max_length=4_000, description="An ItemFilter as JSON (the gateway's)."),
    ] = None,
    genres: Annotated[
        str | None, Query(max_length=5000, description="Comma-separated genres to keep.")
    ] = None,
) -> SimilarItems:
    """Content (BERT) or collaborative (item-tower) neighbours, available and filtered."""
    flt = None
    if filter is not None:
        try:
            flt = ItemFilter.model_validate_json(filter)
        except PydanticValidationError as exc:
            raise ValidationError(f"filter is not a valid ItemFilter: {exc}") from exc
    wanted = [g.strip() for g in (genres or "").split(",") if g.strip()][:50]
    return await items.similar(engine, item_id, k, mode, flt, wanted)


@router.get(
    "/items/{item_id}",
    response_model=ItemDetail,
    tags=["items"],
    summary="One item",
    operation_id="retrieval_get_item",
)
async def get_item(engine: EngineDep, item_id: ItemIdPath) -> ItemDetail:
    """An item of the catalogue or a fresh one."""
    return items.get_item(engine, item_id)


@router.get(
    "/items",
    response_model=ItemList,
    tags=["items"],
    summary="Search titles",
    operation_id="retrieval_search_items",
)
async def search(
    engine: EngineDep,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ItemList:
    """Items whose titles match the query words."""
    return ItemList(items=items.search(engine, q, limit))


@router.post(
    "/items",
    response_model=ItemDetail,
    status_code=201,
    tags=["items"],
    summary="Add an item",
    operation_id="retrieval_add_item",
    responses=CONFLICT_RESPONSES,
)
async def add_item(engine: EngineDep, body: NewItemRequest) -> JSONResponse:
    """Embed and store a new item; it is searchable and recommendable at once."""
    item = await items.add_item(engine, body)
    return JSONResponse(item.model_dump(mode="json"), status_code=201)


@router.patch(
    "/items/{item_id}",
    response_model=ItemDetail,
    tags=["items"],
    summary="Change an item's attributes or availability",
    operation_id="retrieval_patch_item",
)
async def patch_item(engine: EngineDep, item_id: ItemIdPath, body: ItemPatch) -> ItemDetail:
    """Store the change and apply it at once (filters and availability see it)."""
    return await items.patch_item(engine, item_id, body)


@router.post(
    "/users/{user_id}/history",
    status_code=204,
    tags=["users"],
    summary="Append to a user's history",
    operation_id="retrieval_push_history",
)
async def push_history(
    engine: EngineDep, user_id: Annotated[UserId, Path()], body: HistoryUpdate
) -> Response:
    """Record recent items and invalidate the cached user vector."""
    await items.push_history(
        engine, user_id, body.item_ids, seen_only=body.seen_only, hidden=body.hidden
    )
    return Response(status_code=204)


@router.post(
    "/explain",
    response_model=ExplainResponse,
    tags=["retrieval"],
    summary="Reasons for items",
    operation_id="retrieval_explain",
)
async def explain(engine: EngineDep, body: ExplainRequest) -> ExplainResponse:
    """The watched item each recommended item is most similar to."""
    return items.explain(engine, body)
