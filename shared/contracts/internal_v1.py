"""Version 1 of the internal models: gateway -> retrieval and gateway -> ranking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PrivateAttr, model_validator

from shared.contracts.filters import ItemFilter
from shared.contracts.ids import ColumnItemId
from shared.contracts.public_v1 import (
    MAX_IDS,
    MAX_K,
    ItemId,
    NewItem,
    StrictModel,
    UserFeatures,
    UserId,
)

MAX_CANDIDATES = 2000


class CandidatesRequest(StrictModel):
    """Who the candidates are for and what to leave out."""

    user_id: UserId | None = None
    history: Annotated[list[ItemId], Field(max_length=MAX_IDS)] = Field(
        default_factory=list, description="Recent item ids, most recent last."
    )
    user_features: UserFeatures | None = None
    k: Annotated[int, Field(ge=1, le=MAX_CANDIDATES)] = 300
    exclude_item_ids: Annotated[
        list[ItemId],
        Field(max_length=3 * MAX_IDS, description="Excluded, recent and rated ids together."),
    ] = []
    exclude_seen: bool = True
    genres: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=50)] = []
    filter: ItemFilter | None = Field(
        None, description="Attribute filter (shared.contracts.filters); availability always."
    )
    check_item_ids: Annotated[list[ItemId], Field(max_length=2 * MAX_IDS)] = Field(
        default_factory=list,
        description="Other ids the caller named (e.g. low ratings, not history): 404 if unknown.",
    )


MAX_SCORE = 1e9
# Retrieval scores are similarities, fusion weights or interaction counts; the bound
# keeps them finite in the ranker's float32 features (1e30 overflowed to NaN scores).
Score = Annotated[float, Field(ge=-MAX_SCORE, le=MAX_SCORE, allow_inf_nan=False)]
SourceRank = Annotated[int, Field(ge=1, le=2**31 - 1, description="1 = the source's best.")]


SourceName = Annotated[str, Field(max_length=50)]


class CandidateColumns(BaseModel):
    """Candidates as parallel arrays, best first: entry j of every array is candidate j.

    ``titles``, ``years`` and ``genres`` are either empty (not sent: ranking needs none)
    or as long as ``item_ids``; each per-source array is as long as ``item_ids``, with
    null where that source did not propose the candidate.
    """

    # Columns built in the process that ranks them (`hybridrec serve combined`) also carry
    # the arrays they were built from (attach_arrays), so ranking need not rebuild them
    # from the lists; a private attribute is never serialised, so over HTTP it rebuilds.
    # Opaque here: contracts do not depend on the model code that defines the arrays.
    _arrays: tuple[str, object] | None = PrivateAttr(default=None)

    item_ids: Annotated[list[ColumnItemId], Field(max_length=MAX_CANDIDATES)]
    scores: Annotated[list[Score], Field(max_length=MAX_CANDIDATES)]
    sources: Annotated[list[SourceName], Field(max_length=MAX_CANDIDATES)]
    titles: Annotated[list[str], Field(max_length=MAX_CANDIDATES)] = []
    years: Annotated[list[int | None], Field(max_length=MAX_CANDIDATES)] = []
    genres: Annotated[list[list[str]], Field(max_length=MAX_CANDIDATES)] = []
    source_scores: Annotated[
        dict[SourceName, Annotated[list[Score | None], Field(max_length=MAX_CANDIDATES)]],
        Field(max_length=50),
    ] = {}
    source_ranks: Annotated[
        dict[SourceName, Annotated[list[SourceRank | None], Field(max_length=MAX_CANDIDATES)]],
        Field(max_length=50),
    ] = {}

    @model_validator(mode="after")
    def _aligned(self) -> CandidateColumns:
        n = len(self.item_ids)
        lengths = {"scores": len(self.scores), "sources": len(self.sources)}
        lengths |= {f"source_scores.{k}": len(v) for k, v in self.source_scores.items()}
        lengths |= {f"source_ranks.{k}": len(v) for k, v in self.source_ranks.items()}
        for name in ("titles", "years", "genres"):
            if getattr(self, name):
                lengths[name] = len(getattr(self, name))
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(
                f"every column must have one entry per item id ({n}); got {bad}: "
                "send arrays of equal length (titles, years and genres may be empty)"
            )
        return self

    def __len__(self) -> int:
        return len(self.item_ids)

    def attach_arrays(self, version: str, arrays: object) -> None:
        """Keep ``arrays`` (a ``CandidateSet`` whose item positions are bundle
        ``version``'s: the candidates these columns hold, in the same order) for a ranker
        in this process."""
        self._arrays = (version, arrays)

    def arrays(self, version: str) -> object | None:
        """The attached arrays if their positions are bundle ``version``'s, else None."""
        if self._arrays is None or self._arrays[0] != version:
            return None
        return self._arrays[1]



class CandidatesResponse(BaseModel):
    """Merged candidates, best first, with the user context ranking needs."""

    user_id: UserId | None
    columns: CandidateColumns
    history: list[ColumnItemId] = Field(
        description="The history used (known + recent), most recent last."
    )
    model_version: str
    cache: Literal["hit", "miss", "bypass", "none"] = "none"
    matched: int | None = Field(
        None,
        description="With a filter (or unavailable items): how many items passed it and the "
        "exclusions; None: every item could be returned.",
    )
    request_id: str | None = None


class RankRequest(StrictModel):
    """Candidates to score for one user."""

    user_id: UserId | None = None
    history: Annotated[list[ItemId], Field(max_length=MAX_IDS)] = []
    user_features: UserFeatures | None = None
    columns: CandidateColumns = Field(description="The candidates as parallel arrays.")
    k: Annotated[int | None, Field(ge=1, le=MAX_CANDIDATES)] = None



class RankedItem(BaseModel):
    """A scored candidate."""

    item_id: ColumnItemId
    score: float
    rank: int


class RankResponse(BaseModel):
    """Candidates sorted by the ranker's score."""

    items: list[RankedItem]
    model_version: str
    request_id: str | None = None


class HistoryUpdate(StrictModel):
    """Items a user just interacted with, most recent last."""

    item_ids: Annotated[list[ItemId], Field(min_length=1, max_length=MAX_IDS)]
    seen_only: bool = Field(
        False,
        description="The user saw these but did not like them (a low rating): excluded from "
        "later exclude_seen answers, not added to the recent history.",
    )
    hidden: bool = Field(
        False,
        description="The user hid or disliked these (a negative event): excluded from every "
        "later answer for this user, whatever exclude_seen; implies seen_only.",
    )


class NewItemRequest(NewItem):
    """An item to add (internal form, same fields as the public one)."""


class ExplainRequest(StrictModel):
    """Which history item each recommended item is most similar to."""

    history: Annotated[list[ItemId], Field(max_length=MAX_IDS)]
    item_ids: Annotated[list[ItemId], Field(max_length=MAX_K)]


class Explanation(BaseModel):
    """The reasons for one item."""

    item_id: ItemId
    reasons: list[str]


class ExplainResponse(BaseModel):
    """Reasons per item, in the order asked."""

    items: list[Explanation]


def dedupe_keep_last(ids: Sequence[str]) -> list[str]:
    """``ids`` without repeats, each at its last occurrence: the order of every history
    this API carries (most recent last)."""
    return list(reversed(dict.fromkeys(reversed(ids))))
