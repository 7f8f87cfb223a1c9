"""The gateway's popular fallback: the bundle's most popular items, for when retrieval is
down or the gateway is overloaded, minus what the request excludes and what the user hid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.contracts.filters import ItemFilter
from shared.contracts.public_v1 import ScoredItem


@dataclass
class PopularFallback:
    """The bundle's most popular items, for when retrieval is down."""

    version: str
    items: list[dict[str, Any]] = field(default_factory=list)
    #: Merged candidates per user the bundle's ranker was trained and evaluated with.
    max_candidates: int | None = None
    #: Per user, the item ids they hid or disliked in the training data (the bundle's).
    hidden: dict[str, set[str]] = field(default_factory=dict)


    def top(
        self, k: int, *, exclude: set[str], genres: list[str], flt: ItemFilter | None = None
    ) -> list[ScoredItem]:
        """The k most popular available items not excluded, optionally of the given genres
        and through the filter (``popular.json`` carries each item's attributes)."""
        wanted = {g.lower() for g in genres}
        out: list[ScoredItem] = []
        for it in self.items:
            if str(it["item_id"]) in exclude or not it.get("available", True):
                continue
            if wanted and not wanted & {g.lower() for g in it.get("genres", [])}:
                continue
            if flt is not None and not flt.matches(popular_attributes(it)):
                continue
            out.append(
                ScoredItem(
                    item_id=str(it["item_id"]),
                    title=str(it["title"]),
                    year=it.get("year"),
                    genres=list(it.get("genres", [])),
                    score=float(it.get("popularity", 0)),
                    rank=len(out) + 1,
                )
            )
            if len(out) == k:
                break
        return out


def popular_attributes(item: dict[str, Any]) -> dict[str, Any]:
    """A ``popular.json`` entry's filterable attributes (an older bundle's: genres, year)."""
    if "attributes" in item:
        return dict(item["attributes"])
    return {"genres": item.get("genres", []), "year": item.get("year")}
