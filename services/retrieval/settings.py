"""Retrieval settings (``HYBRIDREC_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field

from shared.serving.settings import ServiceSettings


class RetrievalSettings(ServiceSettings):
    """What the retrieval service reads from the environment."""

    port: int = Field(8001, ge=1, le=65535)
    search_k: int | None = Field(
        None, ge=1, description="Annoy search_k override (default: the bundle's recorded value)."
    )
    force_ann: bool = Field(
        False,
        description="Search with the bundle's Annoy indexes even where exact search is "
        "cheaper (catalogues up to 4M item x dim elements use exact search by default).",
    )
    ann_backend: Literal["auto", "annoy", "hnsw"] = Field(
        "auto",
        description="Index kind for catalogues too large for exact search: 'auto' serves the "
        "bundle's HNSW graphs when it has them (several times faster at the same recall) and "
        "its Annoy indexes otherwise; 'annoy' always Annoy (memory-mapped, shared between "
        "processes); 'hnsw' requires HNSW graphs in the bundle.",
    )
    hnsw_ef: int | None = Field(
        None, ge=1, le=100_000,
        description="HNSW search beam override (default: the bundle's recorded ef).",
    )
    ann_threads: int = Field(
        2,
        ge=0,
        le=16,
        description="Threads that run ANN queries off the event loop (Annoy and hnswlib "
        "release the GIL): the two-tower and content queries of one request overlap each "
        "other and its neighbour-table sources, and other requests are served meanwhile. 0 "
        "queries on the event loop. Unused with exact search.",
    )
    max_history: int = Field(50, ge=1, le=1000, description="Recent history kept per user.")
    text_model: str | None = Field(None, description="Sentence-transformers model name or path.")
    verify_bundle: bool = Field(True, description="Check every checksum before loading.")


@lru_cache
def get_settings() -> RetrievalSettings:
    """The retrieval service's settings, read once."""
    return RetrievalSettings()
