"""Version 1 of hybridrec's JSON models (the ``/v1/...`` paths).

Every list in a response is ``items: [{item_id, ...}]``, best first; user and item ids
are the dataset's own, as strings of a safe alphabet (:mod:`shared.contracts.ids`;
MovieLens movieId 296 is ``"296"``). Limits are module constants so settings,
validation and docs agree.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contracts.filters import ItemFilter

# re-exported: the id types of every v1 model
from shared.contracts.ids import ItemId as ItemId
from shared.contracts.ids import UserId as UserId

MAX_K = 200
MAX_IDS = 1000
MAX_TEXT = 2000
MAX_GENRES = 50
MAX_ATTRIBUTES = 100
AttributeValue = str | float | list[str] | None
NewAttributes = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=100)],
        str | float | Annotated[list[Annotated[str, Field(max_length=200)]],
                                Field(max_length=MAX_GENRES)] | None,
    ],
    Field(max_length=MAX_ATTRIBUTES),
]
#: How many items passed a filter (the answer fields of recommendations and similar items).
Matched = Annotated[
    int | None,
    Field(
        description="With a filter (include/exclude/where, genres) or unavailable items: how "
        "many items passed it (and the exclusions); null when every item could be returned.",
    ),
]
FewerThanK = Annotated[
    bool, Field(description="True when fewer than k items came back; fewer_reason says why.")
]
#: Why an answer is not the full pipeline's: a dependency was down (ranking, retrieval,
#: cache), or the gateway was at HYBRIDREC_MAX_IN_FLIGHT and served popular items (overload).
Degraded = Literal["ranking", "retrieval", "cache", "overload"]


class StrictModel(BaseModel):
    """Base: unknown fields are rejected, so typos fail loudly."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- errors
class ErrorBody(BaseModel):
    """What went wrong, in words a caller can act on."""

    code: str = Field(description="Stable machine-readable code, e.g. not_found, invalid_request.")
    message: str = Field(description="What was expected, what arrived, and how to fix it.")
    details: dict[str, object] | None = None


class ErrorResponse(BaseModel):
    """The one error model every service answers with."""

    error: ErrorBody
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "error": {
                    "code": "not_found",
                    "message": "item '99999999' is not in the catalogue",
                },
                "request_id": "3f2c9a0e6b1d4c57",
            }
        }
    )


# --------------------------------------------------------------------------- items
class Item(BaseModel):
    """A catalogue item."""

    item_id: ItemId
    title: str
    year: int | None = None
    genres: list[str] = Field(default_factory=list)


class ItemDetail(Item):
    """A catalogue item with its text fields."""

    tags: list[str] = Field(default_factory=list)
    overview: str | None = None
    popularity: int = Field(0, description="Interactions in the training data.")
    fresh: bool = Field(False, description="Added after the bundle was built.")
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict,
        description="The item's filterable attributes (categorical: a value or a list of "
        "values; numeric: a number; None when missing), with PATCH changes applied.",
    )
    available: bool = Field(True, description="False: never recommended nor listed as similar.")

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "item_id": "1",
                "title": "Toy Story",
                "year": 1995,
                "genres": ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
                "tags": ["pixar", "fun"],
                "overview": "A cowboy doll is threatened by a new spaceman toy.",
                "popularity": 215,
                "fresh": False,
            }
        }
    )


class ScoredItem(Item):
    """An item in a ranked list."""

    score: float
    rank: int = Field(ge=1)
    reasons: list[str] | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "item_id": "2355",
                "title": "Bug's Life, A",
                "year": 1998,
                "genres": ["Adventure", "Animation", "Children", "Comedy"],
                "score": 0.913,
                "rank": 1,
                "reasons": ["similar to Toy Story (1995)"],
            }
        }
    )


class ItemList(BaseModel):
    """A plain list of items (search results)."""

    items: list[ItemDetail]
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "items": [
                    {
                        "item_id": "1",
                        "title": "Toy Story",
                        "year": 1995,
                        "genres": ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
                        "tags": [],
                        "overview": None,
                        "popularity": 215,
                        "fresh": False,
                    }
                ],
                "request_id": "3f2c9a0e6b1d4c57",
            }
        }
    )


class NewItem(StrictModel):
    """An item to add to the catalogue at run time."""

    item_id: ItemId | None = Field(
        None,
        description="The item's id in your catalogue; 409 if it is taken. Omitted: the "
        "service assigns one (the next free decimal number above the catalogue's).",
    )
    title: Annotated[str, Field(min_length=1, max_length=500)]
    genres: Annotated[
        list[Annotated[str, Field(max_length=100)]], Field(max_length=MAX_GENRES)
    ] = []
    year: Annotated[int | None, Field(ge=1800, le=2200)] = None
    overview: Annotated[str | None, Field(max_length=MAX_TEXT * 5)] = None
    tags: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=100)] = []
    attributes: NewAttributes = Field(
        default_factory=dict,
        description="Attribute values by name (the bundle's attributes: GET "
        "/v1/items/{id} shows them); filters apply to the new item with these values.",
    )
    available: bool = Field(True, description="False: the item is never recommended.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "title": "The Quiet Orbit",
                "genres": ["Sci-Fi", "Drama"],
                "year": 2026,
                "overview": "A lone engineer keeps a failing space station alive.",
                "tags": ["space", "slow burn"],
            }
        },
    )


class SimilarItems(BaseModel):
    """Neighbours of one item."""

    item_id: ItemId
    mode: Literal["content", "collaborative"]
    items: list[ScoredItem]
    model_version: str
    matched: Matched = None
    fewer_than_k: FewerThanK = False
    fewer_reason: str | None = None
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "item_id": "1",
                "mode": "content",
                "items": [
                    {
                        "item_id": "3114",
                        "title": "Toy Story 2",
                        "year": 1999,
                        "genres": ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
                        "score": 0.874,
                        "rank": 1,
                    }
                ],
                "model_version": "20260101T000000Z-1a2b3c4d",
                "request_id": "3f2c9a0e6b1d4c57",
            }
        }
    )


# --------------------------------------------------------------------------- users
UserAttributeValue = (
    Annotated[str, Field(max_length=200)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=MAX_GENRES)]
    | None
)


class UserFeatures(BaseModel):
    """What the request knows about the user: ``gender``, ``age``, ``occupation`` (ml-1m,
    ml-100k) or any attribute of your users table by its name (``{"country": "FR",
    "age": 34}``; a list for a list attribute). Named attributes replace a known user's
    stored values for this request; an anonymous user has only these. Names the model was
    not trained with are ignored, and so are values it never saw in training."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, UserAttributeValue]  # type: ignore[assignment]

    gender: Annotated[str | None, Field(max_length=20)] = None
    age: Annotated[int | None, Field(ge=0, le=130)] = None
    occupation: Annotated[str | None, Field(max_length=100)] = None

    @model_validator(mode="after")
    def _bounded(self) -> UserFeatures:
        extra = self.model_extra or {}
        if len(extra) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} user attributes, got {len(extra)}")
        long = [k for k in extra if not 1 <= len(k) <= 100]
        if long:
            raise ValueError(f"attribute names must have 1 to 100 characters, got {long[0]!r}")
        return self


class RatingIn(StrictModel):
    """One explicit rating given in a request."""

    item_id: ItemId
    rating: Annotated[float, Field(ge=0.5, le=5.0)]

    @field_validator("rating")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("rating must be a finite number between 0.5 and 5.0")
        return v


class RecommendationRequest(StrictModel):
    """Recommendations for a known, new or anonymous user."""

    user_id: UserId | None = None
    recent_item_ids: Annotated[list[ItemId], Field(max_length=MAX_IDS)] = []
    ratings: Annotated[list[RatingIn], Field(max_length=MAX_IDS)] = []
    user_features: UserFeatures | None = None
    k: Annotated[int, Field(ge=1, le=MAX_K)] = 10
    exclude_item_ids: Annotated[list[ItemId], Field(max_length=MAX_IDS)] = []
    genres: Annotated[
        list[Annotated[str, Field(max_length=100)]], Field(max_length=MAX_GENRES)
    ] = []
    exclude_seen: bool = True
    explain: bool = False
    filter: ItemFilter | None = Field(
        None,
        description="Attribute filter: include/exclude attribute values, numeric ranges "
        "(docs/api.md#filters). Unavailable items are never returned, filter or not.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "recent_item_ids": ["1", "2355", "3114"],
                "ratings": [{"item_id": "296", "rating": 4.5}],
                "k": 10,
                "genres": ["Comedy"],
            }
        },
    )


class Recommendations(BaseModel):
    """A ranked list of recommendations."""

    user_id: UserId | None
    items: list[ScoredItem]
    model_version: str
    degraded: list[Degraded] = Field(
        default_factory=list,
        description="Empty for a full answer. `retrieval`: retrieval was down, these are the "
        "catalogue's popular items; `ranking`: ranking was down, candidates are in retrieval's "
        "order; `cache`: Redis was down (recent events may be missing); `overload`: the "
        "gateway was computing its limit of recommendations (HYBRIDREC_MAX_IN_FLIGHT) and "
        "answered with popular items at once. Degraded answers are never cached.",
    )
    matched: Matched = None
    fewer_than_k: FewerThanK = False
    fewer_reason: str | None = None
    request_id: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "user_id": "42",
                "items": [
                    {
                        "item_id": "2355",
                        "title": "Bug's Life, A",
                        "year": 1998,
                        "genres": ["Adventure", "Animation", "Children", "Comedy"],
                        "score": 0.913,
                        "rank": 1,
                    }
                ],
                "model_version": "20260101T000000Z-1a2b3c4d",
                "degraded": [],
                "request_id": "3f2c9a0e6b1d4c57",
            }
        }
    )


# --------------------------------------------------------------------------- health
class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "not_ready"]
    service: str
    model_version: str | None = None
    checks: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "status": "ok",
                "service": "gateway",
                "model_version": "20260101T000000Z-1a2b3c4d",
                "checks": {"retrieval": "ok", "ranking": "ok", "redis": "ok"},
            }
        }
    )
