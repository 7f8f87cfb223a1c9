"""Version 1 models of item changes and bulk ingestion.

``PATCH /v1/items/{item_id}`` takes an :class:`ItemPatch`; ``POST /v1/items:batch`` and
``POST /v1/events:batch`` take a JSON array or NDJSON (one JSON object a line) of at most
:data:`MAX_ITEM_ROWS` items or :data:`MAX_EVENT_ROWS` events, within the services' body
limit (``HYBRIDREC_MAX_BODY_BYTES``, 1 MiB by default: 413 above), and answer a
:class:`BatchResult`: one :class:`RowResult` per row, in order, each with its own status
code (2xx stored, 4xx refused and why, 503 not stored: retry it). A row is stored whole or
not at all; a body that is not a JSON array nor NDJSON of objects is a 4xx as a whole.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.ids import ItemId, UserId
from shared.contracts.public_v1 import NewAttributes

MAX_EVENT_ROWS = 1000
MAX_ITEM_ROWS = 200  # each new item's text is embedded by BERT


class ItemPatch(BaseModel):
    """A change of an item's attributes or availability, live at the next request."""

    attributes: NewAttributes | None = Field(
        None,
        description="Attribute values to set, by name (the catalogue's attributes; GET "
        "/v1/items/{id} shows them); null removes a value. Other attributes are kept.",
    )
    available: bool | None = Field(
        None, description="false: never recommended nor shown as similar; true: again."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"available": False, "attributes": {"price": 12.5}}},
    )

    @model_validator(mode="after")
    def _something(self) -> ItemPatch:
        if self.attributes is None and self.available is None:
            raise ValueError("a PATCH needs attributes, available or both")
        return self

    def change(self) -> dict[str, Any]:
        """The stored form: only the parts given."""
        out: dict[str, Any] = {}
        if self.attributes is not None:
            out["attributes"] = dict(self.attributes)  # a None value: remove it
        if self.available is not None:
            out["available"] = self.available
        return out


class UserEventIn(BaseModel):
    """One row of ``POST /v1/events:batch``: a feedback event with its user."""

    user_id: UserId

    model_config = ConfigDict(extra="allow")


class RowResult(BaseModel):
    """What happened to one row of a batch."""

    row: int = Field(ge=0, description="0-based position of the row in the body.")
    status: int = Field(description="201/202 stored; 4xx refused (error says why); 503 retry.")
    item_id: ItemId | None = None
    event_id: str | None = None
    error: str | None = None


class BatchResult(BaseModel):
    """Per-row answers of a batch, in the body's order."""

    accepted: int
    rejected: int
    rows: list[RowResult]
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "accepted": 1,
                "rejected": 1,
                "rows": [
                    {"row": 0, "status": 201, "item_id": "sku-000900"},
                    {"row": 1, "status": 422, "error": "title: Field required"},
                ],
            }
        }
    )
