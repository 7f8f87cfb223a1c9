"""Ranking settings (``HYBRIDREC_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from shared.serving.settings import ServiceSettings


class RankingSettings(ServiceSettings):
    """What the ranking service reads from the environment."""

    port: int = Field(8002, ge=1, le=65535)
    scorer: str = Field("auto", description="Forward pass: auto, numpy or tf_function.")
    verify_bundle: bool = Field(True, description="Check every checksum before loading.")


@lru_cache
def get_settings() -> RankingSettings:
    """The ranking service's settings, read once."""
    return RankingSettings()
