"""Version 1 of hybridrec's feedback-event models (``POST /v1/users/{id}/events`` and the
events of ``POST /v1/events:batch``): the event types, what a client sends and what the
gateway answers once the event is stored. The other ``/v1`` models are in
:mod:`shared.contracts.public_v1`.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contracts.ids import ItemId, UserId
from shared.contracts.public_v1 import Degraded, StrictModel

EventType = Literal[
    "view", "click", "add_to_cart", "purchase", "like", "rating", "dislike", "hide"
]
"""Feedback event types: the positive ones say the user wanted the item (``rating`` by its
value: 3.5 and above), the negative ones (:data:`NEGATIVE_EVENT_TYPES`) that they did not."""
NEGATIVE_EVENT_TYPES: tuple[str, ...] = ("dislike", "hide")
"""Event types after which the item is never recommended to that user again."""


class EventIn(StrictModel):
    """One feedback event. ``dislike`` and ``hide`` remove the item from the user's
    recommendations from the next request on (whatever ``exclude_seen``); every event is
    stored and exported for the next training run, which weighs each type (docs/own-data.md)."""

    item_id: ItemId
    type: EventType = "view"
    rating: Annotated[float | None, Field(ge=0.5, le=5.0)] = None
    timestamp: Annotated[int | None, Field(ge=0, le=2**41)] = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"item_id": "296", "type": "rating", "rating": 4.5, "timestamp": 1764288000}
        },
    )

    @field_validator("rating")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("rating must be a finite number between 0.5 and 5.0")
        return v

    @model_validator(mode="after")
    def _rating_given(self) -> EventIn:
        if self.type == "rating" and self.rating is None:
            raise ValueError('an event of type "rating" needs a rating between 0.5 and 5.0')
        return self


class EventAccepted(BaseModel):
    """An event stored durably."""

    status: Literal["accepted"] = "accepted"
    event_id: str
    user_id: UserId
    item_id: ItemId
    degraded: list[Degraded] = Field(default_factory=list)
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "status": "accepted",
                "event_id": "1764288000000-0",
                "user_id": "42",
                "item_id": "296",
                "degraded": [],
                "request_id": "3f2c9a0e6b1d4c57",
            }
        }
    )
