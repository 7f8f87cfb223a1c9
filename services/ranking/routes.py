"""Ranking's internal route (called by the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from services.ranking.deps import EngineDep
from shared.contracts.internal_v1 import RankRequest, RankResponse
from shared.serving.app_factory import ERROR_RESPONSES
from shared.serving.json_body import documented_body, json_body

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)
#: Parsed from the raw bytes in one pass (see shared.serving.json_body).
RankBody = Annotated[RankRequest, Depends(json_body(RankRequest))]


@router.post(
    "/rank",
    response_model=RankResponse,
    tags=["ranking"],
    summary="Score and sort candidates",
    operation_id="ranking_rank",
    openapi_extra=documented_body(RankRequest),
)
async def rank(engine: EngineDep, body: RankBody) -> Response:
    """The candidates scored by the hybrid ranker, best first."""
    # On the event loop: the numpy work holds the GIL either way, and a sync route would
    # add a thread-pool hop to every request (figures:
    # docs/scaling.md#measurements-behind-code-choices).
    # Serialised here, once: FastAPI would dump, validate and encode the model again.
    return Response(engine.rank(body).model_dump_json(), media_type="application/json")
