"""The ranking service's dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.ranking.engine import RankingEngine
from shared.contracts.errors import NotReadyError


async def get_engine(request: Request) -> RankingEngine:
    """The loaded engine; 503 until the bundle is loaded."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        error = getattr(request.app.state, "load_error", None)
        raise NotReadyError(
            f"ranking has no bundle loaded ({error})"
            if error
            else "ranking is still loading its bundle; retry in a moment"
        )
    return engine


EngineDep = Annotated[RankingEngine, Depends(get_engine)]
