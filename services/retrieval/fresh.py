"""Items added at run time (``POST /v1/items``): everything about them in one place.

A fresh item is embedded on arrival (BERT text vector and the candidate tower's
content-only path), stored durably (:class:`~shared.stores.fresh_items.FreshItemStore`,
shared by every retrieval replica), and held in memory beside the bundle's catalogue by
:class:`FreshItems`: looked up, searched by title, found as a similar item, scored exactly
as a candidate (there are few of them, so no index) and inserted into the merged candidate
list at the fused score of the catalogue candidate it beats. The next ``hybridrec train
--include-fresh`` folds them into the bundle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from services.retrieval.filtering import LiveItems
from shared.contracts import bundle_layout as L
from shared.contracts.errors import DependencyUnavailableError
from shared.contracts.filters import ItemFilter
from shared.contracts.public_v1 import ItemDetail, NewItem
from shared.model.catalogue import Catalogue
from shared.model.text import item_text, text_attributes
from shared.stores.fresh_items import decode_vector, encode_vector
from shared.stores.redis_conn import RedisUnavailable

if TYPE_CHECKING:
    from services.retrieval.engine import RetrievalEngine

VectorKind = Literal["content", "vector"]


@dataclass
class FreshItems:
    """Run-time items held in memory: ids, metadata and both vectors, in arrival order."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    content: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_records(
        cls,
        records: list[dict[str, Any]],
        skip: Catalogue,
        patches: dict[str, dict[str, Any]] | None = None,
    ) -> FreshItems:
        """Keep the records whose id is not in the bundle's catalogue already, with their
        stored changes (``PATCH /v1/items``) applied."""
        recs = [
            apply_change(r, (patches or {}).get(str(r["item_id"])))
            for r in records
            if skip.positions([str(r["item_id"])])[0] < 0
        ]
        if not recs:
            return cls()
        return cls(
            ids=np.asarray([str(r["item_id"]) for r in recs], dtype=str),
            content=np.stack([decode_vector(r["content"]) for r in recs]),
            vectors=np.stack([decode_vector(r["vector"]) for r in recs]),
            records={str(r["item_id"]): r for r in recs},
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.records

    def meta(self, item_id: str) -> dict[str, Any]:
        """Title, year and genres of a fresh item (the fields candidates carry)."""
        rec = self.records[item_id]
        return {
            "title": rec["title"],
            "year": rec.get("year"),
            "genres": list(rec.get("genres", [])),
        }

    def detail(self, item_id: str) -> ItemDetail:
        """A fresh item as the API shows an item."""
        rec = self.records[item_id]
        return ItemDetail(
            item_id=item_id,
            title=rec["title"],
            year=rec.get("year"),
            genres=rec.get("genres", []),
            tags=rec.get("tags", []),
            overview=rec.get("overview"),
            popularity=0,
            fresh=True,
            attributes=self.attributes(item_id),
            available=bool(rec.get("available", True)),
        )

    def vector(self, item_id: str, kind: VectorKind) -> np.ndarray:
        """A fresh item's content (BERT) or item-tower vector."""
        return decode_vector(self.records[item_id][kind])

    def title_matches(self, q: str) -> list[str]:
        """Ids of the fresh items whose title holds every word of ``q``."""
        words = q.lower().split()
        return [
            i for i, rec in self.records.items() if all(w in rec["title"].lower() for w in words)
        ]

    def neighbours(self, q: np.ndarray, kind: VectorKind, skip: str) -> list[tuple[str, float]]:
        """``(item_id, cosine)`` of every fresh item but ``skip`` against ``q``."""
        if not len(self):
            return []
        matrix = self.content if kind == "content" else self.vectors
        sims = matrix @ np.asarray(q, np.float32)
        return [(str(i), float(s)) for i, s in zip(self.ids, sims, strict=True) if str(i) != skip]

    def candidates(
        self,
        vec: np.ndarray,
        content_query: np.ndarray | None,
        exclude_ids: set[str],
        genres: list[str],
        k: int,
        flt: ItemFilter | None = None,
    ) -> list[tuple[str, float, str]]:
        """Fresh items scored exactly: ``(item_id, score, source)``, best first.

        The score is the better of the two-tower similarity to the user vector and, with a
        history, the content similarity to the history's content query.
        """
        if not len(self):
            return []
        tt = self.vectors @ vec.astype(np.float32)
        score, source = tt, np.full(len(tt), "two_tower", dtype=object)
        if content_query is not None:
            cs = self.content @ content_query.astype(np.float32)
            source = np.where(cs > tt, "content", source)
            score = np.maximum(tt, cs)
        out = []
        for j in np.argsort(-score, kind="stable"):
            iid = str(self.ids[j])
            if iid in exclude_ids or not self.passes(iid, genres, flt):
                continue
            out.append((iid, float(score[j]), str(source[j])))
            if len(out) == k:
                break
        return out

    def attributes(self, item_id: str) -> dict[str, Any]:
        """A fresh item's filterable attributes: its genres and year, then its own."""
        rec = self.records[item_id]
        base: dict[str, Any] = {"genres": list(rec.get("genres", []))}
        if rec.get("year") is not None:
            base["year"] = float(rec["year"])
        return {**base, **rec.get("attributes", {})}

    def passes(self, item_id: str, genres: list[str], flt: ItemFilter | None) -> bool:
        """Available, of one of ``genres`` (when given) and through the filter."""
        rec = self.records[item_id]
        if not rec.get("available", True):
            return False
        want = {g.lower() for g in genres}
        if want and not want & {g.lower() for g in rec.get("genres", [])}:
            return False
        return flt is None or flt.matches(self.attributes(item_id))

    def count_matching(
        self, exclude_ids: set[str], genres: list[str], flt: ItemFilter | None
    ) -> int:
        """Fresh items a filtered request could return."""
        return sum(
            1 for i in self.records if i not in exclude_ids and self.passes(i, genres, flt)
        )

    def insert(
        self, rows: list[dict[str, Any]], fresh: list[tuple[str, float, str]], k: int
    ) -> list[dict[str, Any]]:
        """Candidate rows with the fresh ones inserted, each at the fused score of the
        catalogue candidate it beats on its own source; the first ``k`` are kept."""
        for iid, score, source in fresh:
            at = sum(1 for it in rows if it["source_scores"].get(source, -np.inf) > score)
            fused = rows[at]["score"] if at < len(rows) else 0.0
            rows.insert(
                at,
                {
                    "item_id": iid,
                    "score": fused + 1e-6,
                    "source": "fresh",
                    "source_scores": {source: score},
                    "source_ranks": {},
                    **self.meta(iid),
                },
            )
        return rows[:k]


def apply_change(record: dict[str, Any], change: dict[str, Any] | None) -> dict[str, Any]:
    """A fresh item's record with a stored change applied."""
    if not change:
        return record
    out = {**record, "attributes": {**record.get("attributes", {}),
                                    **change.get("attributes", {})}}
    if "available" in change:
        out["available"] = bool(change["available"])
    return out


async def refresh(engine: RetrievalEngine) -> None:
    """Reload run-time items and item changes from their durable store (other replicas
    add and change them too)."""
    patches = await engine.fresh_store.patches()
    engine.fresh = FreshItems.from_records(
        await engine.fresh_store.all(), engine.catalogue, patches
    )
    engine.live = LiveItems.build(engine.catalogue, patches)


async def add(engine: RetrievalEngine, item: NewItem) -> ItemDetail:
    """Embed a new item (BERT + the candidate tower's content path) and store it durably."""
    encoder = await engine.text_encoder()
    manifest = getattr(getattr(engine, "bundle", None), "manifest", None) or {}
    declared = manifest.get("components", {}).get(L.ATTRIBUTES_COMPONENT) or []
    overview = text_attributes(item.overview, item.attributes, declared)  # text -> BERT
    genres, years = engine.encoder.genres_and_years([item.genres], [item.year], [item.attributes])
    text = item_text(item.title, years[0], genres[0], item.tags, overview)
    content = (await asyncio.to_thread(encoder.encode, [text]))[0]
    vector = engine.candidate_tower.encode_new_items(
        engine.encoder, content[None, :], [item.genres], [item.year], [item.attributes]
    )[0]
    record = {
        **item.model_dump(mode="json", exclude_none=True),
        "content": encode_vector(content),
        "vector": encode_vector(vector),
    }
    catalogue = engine.catalogue
    try:
        stored = await engine.fresh_store.add(
            record, catalogue.next_item_id, lambda i: bool(catalogue.positions([i])[0] >= 0)
        )
    except RedisUnavailable as exc:  # a 503 the caller may retry, never a 500
        raise DependencyUnavailableError(
            f"the new item was not stored: Redis did not answer ({exc}); retry shortly",
            dependency="redis",
        ) from exc
    await refresh(engine)
    return engine.fresh.detail(str(stored["item_id"]))
