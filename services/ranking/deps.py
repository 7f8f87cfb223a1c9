"""The ranking service's dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.ranking.engine import RankingEngine
from shared.serving.app_factory import loaded_engine


async def get_engine(request: Request) -> RankingEngine:
    """The loaded engine; 503 until the bundle is loaded."""
    engine: RankingEngine = loaded_engine(request.app, "ranking")
    return engine


EngineDep = Annotated[RankingEngine, Depends(get_engine)]
