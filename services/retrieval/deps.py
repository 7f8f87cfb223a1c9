"""The retrieval service's dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.retrieval.engine import RetrievalEngine
from shared.serving.app_factory import loaded_engine


async def get_engine(request: Request) -> RetrievalEngine:
    """The loaded engine; 503 until the bundle is loaded."""
    engine: RetrievalEngine = loaded_engine(request.app, "retrieval")
    return engine


EngineDep = Annotated[RetrievalEngine, Depends(get_engine)]
