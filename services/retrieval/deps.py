"""The retrieval service's dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.retrieval.engine import RetrievalEngine
from shared.contracts.errors import NotReadyError


async def get_engine(request: Request) -> RetrievalEngine:
    """The loaded engine; 503 until the bundle is loaded."""
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        error = getattr(request.app.state, "load_error", None)
        raise NotReadyError(
            f"retrieval has no bundle loaded ({error})"
            if error
            else "retrieval is still loading its bundle; retry in a moment"
        )
    return engine


EngineDep = Annotated[RetrievalEngine, Depends(get_engine)]
