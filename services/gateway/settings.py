"""Gateway settings (``HYBRIDREC_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field

from shared.serving.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """What the public gateway reads from the environment."""

    port: int = Field(8000, ge=1, le=65535)
    retrieval_url: str = Field(
        "http://127.0.0.1:8001",
        description="Retrieval base URL; several comma-separated (or a host name with several "
        "addresses) are balanced, an idempotent call retried once on another.",
    )
    ranking_url: str = Field(
        "http://127.0.0.1:8002",
        description="Ranking base URL; several comma-separated (or a host name with several "
        "addresses) are balanced, an idempotent call retried once on another.",
    )
    retrieval_timeout_s: float = Field(0.8, gt=0, description="Timeout of one retrieval call.")
    ranking_timeout_s: float = Field(0.5, gt=0, description="Timeout of one ranking call.")
    deadline_s: float = Field(
        1.5, gt=0, description="No recommendation response takes longer than this."
    )
    n_candidates: int | None = Field(
        None,
        ge=10,
        le=2000,
        description="Candidates sent to ranking (default: the bundle's max_candidates, the "
        "count its ranker was trained and evaluated with; 200 if the bundle does not say).",
    )
    result_cache_ttl_s: float = Field(
        300.0,
        ge=0,
        le=86400,
        description="Seconds a finished recommendation is served from Redis (0 = off); "
        "a user's feedback event makes their cached answers stale at once.",
    )
    max_in_flight: int = Field(
        8,
        ge=0,
        le=100_000,
        description="Recommendations computed at once by this process; a request beyond it "
        "that the result cache cannot answer gets the popular items at once, marked "
        "degraded: ['overload'], instead of queueing behind late work. 0 = no limit. "
        "The default suits a gateway in front of one retrieval and one ranking process; "
        "raise it with their replicas (docs/configuration.md).",
    )
    api_keys: str | None = Field(
        None, description="Comma-separated API keys; when set, X-API-Key is required."
    )
    api_keys_file: str | None = Field(None, description="File with one API key per line.")
    cors_origins: str = Field("", description="Comma-separated allowed CORS origins (none).")

    def key_set(self) -> frozenset[str]:
        """Every configured API key (empty = open)."""
        keys = {k.strip() for k in (self.api_keys or "").split(",") if k.strip()}
        if self.api_keys_file:
            text = Path(self.api_keys_file).read_text(encoding="utf-8")
            keys |= {
                ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")
            }
        return frozenset(keys)


@lru_cache
def get_settings() -> GatewaySettings:
    """The gateway's settings, read once."""
    return GatewaySettings()
