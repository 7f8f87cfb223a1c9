"""Version 1 of the gateway's status and user-history models.

``GET /v1/status`` and ``GET /v1/users/{user_id}/history``: read-only views the
dashboard (``/ui``) is built on; any client may use them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.public_v1 import Item, UserId


class ServiceState(BaseModel):
    """One service's readiness, as its ``/health/ready`` says."""

    service: str
    status: Literal["ok", "not_ready", "down"] = Field(
        description="ok / not_ready (answered 503) / down (no answer)."
    )
    model_version: str | None = None
    checks: dict[str, str] = Field(default_factory=dict)


class BundleSummary(BaseModel):
    """The bundle the gateway serves, from its manifest."""

    version: str
    trained_at: datetime | None = Field(None, description="When the bundle was written.")
    loaded_at: datetime | None = Field(None, description="When the gateway loaded it.")
    dataset: str | None = Field(None, description="The training data's name.")
    n_items: int | None = Field(None, description="Items in the bundle's catalogue.")
    n_users: int | None = Field(None, description="Users the bundle was trained on.")
    sources: list[str] = Field(default_factory=list, description="Retrieval's candidate sources.")
    example_user_ids: list[UserId] = Field(
        default_factory=list, description="A few users of the training data, to look at."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="The manifest's numeric evaluation results (flattened: `a.b` for nested).",
    )


class TrafficStats(BaseModel):
    """This gateway process's traffic over the last ``window_s`` seconds (its own metrics)."""

    window_s: float = Field(description="Seconds the figures cover (at most 60).")
    requests_per_s: float = Field(description="Recommendation requests per second.")
    p50_ms: float | None = Field(None, description="Median recommendation latency (histogram).")
    p99_ms: float | None = Field(None, description="99th percentile latency (histogram).")
    cache_hit_rate: float | None = Field(
        None, description="Share of recommendation answers served by the result cache."
    )
    degraded_answers: int = Field(description="Degraded recommendation answers in the window.")
    degraded_by_reason: dict[str, int] = Field(default_factory=dict)
    events_per_s: float = Field(description="Feedback events accepted per second.")
    total_requests: int = Field(description="Recommendation requests since the process started.")
    total_events: int = Field(description="Feedback events accepted since the process started.")


class Status(BaseModel):
    """Everything the dashboard's overview shows."""

    services: list[ServiceState]
    bundle: BundleSummary | None = Field(None, description="Null while no bundle is loaded.")
    traffic: TrafficStats
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "services": [
                    {"service": "gateway", "status": "ok",
                     "model_version": "20260101-000000-1a2b3c4d", "checks": {"retrieval": "ok"}},
                ],
                "bundle": {
                    "version": "20260101-000000-1a2b3c4d",
                    "trained_at": "2026-01-01T00:00:00Z",
                    "dataset": "ml-latest-small",
                    "n_items": 9742,
                    "n_users": 610,
                    "metrics": {"valid_ndcg@10_retrieval": 0.071},
                },
                "traffic": {
                    "window_s": 60.0, "requests_per_s": 12.5, "p50_ms": 8.1, "p99_ms": 24.0,
                    "cache_hit_rate": 0.4, "degraded_answers": 0, "events_per_s": 0.5,
                    "total_requests": 750, "total_events": 30,
                },
            }
        }
    )  # fmt: skip


class HistoryEntry(Item):
    """One item of a user's history."""

    source: Literal["event", "history"] = Field(
        description="event: a feedback event (type, rating and time known); history: an item "
        "of the history retrieval keeps (the training data's positive interactions, then "
        "positive events; the order is known, not the time)."
    )
    type: Literal["rating", "view", "click"] | None = None
    rating: float | None = None
    timestamp: int | None = Field(None, description="Unix seconds (events only).")


class UserHistory(BaseModel):
    """A user's history, newest first."""

    user_id: UserId
    items: list[HistoryEntry]
    total: int = Field(description="Entries before the limit was applied.")
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "user_id": "42",
                "items": [
                    {"item_id": "296", "title": "Pulp Fiction", "year": 1994, "genres": ["Crime"],
                     "source": "event", "type": "rating", "rating": 4.5, "timestamp": 1764288000},
                    {"item_id": "1", "title": "Toy Story", "year": 1995, "genres": ["Comedy"],
                     "source": "history"},
                ],
                "total": 2,
                "request_id": "3f2c9a0e6b1d4c57",
            }
        }
    )  # fmt: skip
