"""Attribute filters and availability inside retrieval (issue 19 point 5).

:func:`allowed_mask` turns a request's :class:`~shared.contracts.filters.ItemFilter` (and the
``genres=`` shorthand) into a bool mask over the catalogue, availability always included,
with the live item changes (``PATCH /v1/items/{id}``, :class:`LiveItems`) applied.
:func:`filtered_search` is the vector search under that mask: an exact scan of the allowed
rows when they are few enough (the size rule of :func:`~shared.model.search.exact.use_exact`),
else the ANN index asked for more neighbours in proportion to the filter's selectivity, and
the exact scan again when even that leaves fewer than wanted. :func:`top_up` fills a merged
candidate set up to ``k`` with the most popular allowed items, so ``k`` items come back
whenever ``k`` pass the filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from services.retrieval.lists import most_popular
from shared.contracts.filters import ItemFilter, check_filter
from shared.model.candidates import CandidateSet
from shared.model.catalogue import Catalogue
from shared.model.search import VectorIndex
from shared.model.search.exact import EXACT_MAX_ELEMENTS

if TYPE_CHECKING:
    from services.retrieval.engine import RetrievalEngine

#: The ANN query asks for at most this many times the neighbours wanted.
MAX_WIDEN = 20


@dataclass
class LiveItems:
    """Catalogue items changed at run time: effective attributes and availability.

    ``patched`` maps a catalogue position to its full effective ``(attributes, available)``
    (the bundle's values with every stored change applied); ``available`` is the bundle's
    availability with the changes applied.
    """

    available: np.ndarray
    patched: dict[int, tuple[dict[str, Any], bool]] = field(default_factory=dict)
    all_available: bool = True

    @classmethod
    def build(cls, catalogue: Catalogue, patches: dict[str, dict[str, Any]]) -> LiveItems:
        """Apply stored changes (item id -> ``{attributes: {...}, available: bool}``)."""
        available = catalogue.available
        patched: dict[int, tuple[dict[str, Any], bool]] = {}
        if patches:
            ids = list(patches)
            available = available.copy()
            for iid, pos in zip(ids, catalogue.positions(ids).tolist(), strict=True):
                if pos < 0:
                    continue  # a fresh item's change lives in its own record
                change = patches[iid]
                attrs = {**catalogue.attributes(pos), **change.get("attributes", {})}
                avail = bool(change.get("available", catalogue.available[pos]))
                available[pos] = avail
                patched[pos] = (attrs, avail)
        return cls(available=available, patched=patched, all_available=bool(available.all()))

    def attributes(self, catalogue: Catalogue, pos: int) -> dict[str, Any]:
        """One item's effective attributes."""
        got = self.patched.get(pos)
        return got[0] if got is not None else catalogue.attributes(pos)


def allowed_mask(
    engine: RetrievalEngine, flt: ItemFilter | None, genres: list[str]
) -> np.ndarray | None:
    """[n] bool: items that pass the filter, the genres shorthand and are available;
    None when every item does (no filter, every item available).

    Raises:
        ValidationError: The filter names an unknown attribute or asks a range of a
            categorical one (422).
    """
    cat, live = engine.catalogue, engine.live
    check_filter(flt, cat.attribute_types)
    active = flt is not None and not flt.empty
    if not active and not genres and live.all_available:
        return None
    mask = live.available.copy()
    if genres:
        mask &= cat.genre_mask(genres)
    if flt is not None and active:
        for name, values in flt.include.items():
            index = cat.value_positions(name)
            hit = np.zeros(len(cat), dtype=bool)
            for v in values:
                hit[index.get(v.lower(), np.zeros(0, np.int64))] = True
            mask &= hit
        for name, values in flt.exclude.items():
            index = cat.value_positions(name)
            for v in values:
                mask[index.get(v.lower(), np.zeros(0, np.int64))] = False
        for name, bounds in flt.range.items():
            col = cat.numeric[name]
            with np.errstate(invalid="ignore"):
                ok = ~np.isnan(col)
                if bounds.gte is not None:
                    ok &= col >= bounds.gte
                if bounds.gt is not None:
                    ok &= col > bounds.gt
                if bounds.lte is not None:
                    ok &= col <= bounds.lte
                if bounds.lt is not None:
                    ok &= col < bounds.lt
            mask &= ok
    genre_ok = cat.genre_mask(genres) if genres and live.patched else None
    for pos, (attrs, avail) in live.patched.items():  # changed items: their live values
        ok_genres = genre_ok is None or bool(genre_ok[pos])
        mask[pos] = avail and ok_genres and (flt is None or flt.matches(attrs))
    return mask


def subset_search(
    vectors: np.ndarray, rows: np.ndarray, q: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-``n`` of ``q`` among the ``rows`` of ``vectors`` (ids, scores)."""
    if not len(rows) or n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    sub = np.asarray(vectors[rows], dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", sub, sub))
    qv = np.asarray(q, np.float32).reshape(-1)
    qn = float(np.linalg.norm(qv))
    sims = (sub @ qv) / np.where(norms > 0, norms, 1.0) / (qn if qn > 0 else 1.0)
    m = min(n, len(rows))
    top = np.argpartition(-sims, m - 1)[:m] if m < len(rows) else np.arange(len(rows))
    order = np.lexsort((rows[top], -sims[top]))
    chosen = top[order]
    return rows[chosen].astype(np.int64), sims[chosen].astype(np.float32)


def exact_is_cheaper(index: VectorIndex, n_ok: int) -> bool:
    """Scan the allowed rows rather than ask the index: small index, or few allowed rows."""
    return index.kind == "exact" or n_ok * index.dim <= EXACT_MAX_ELEMENTS


def widen_factor(n_items: int, n_ok: int) -> float:
    """How many times more neighbours an ANN query asks for under a filter letting ``n_ok``
    of ``n_items`` through: 1.5x the inverse selectivity, between 1 and :data:`MAX_WIDEN`
    (a filter letting most items through, such as availability alone, costs about 1.5x)."""
    if n_ok <= 0:
        return 1.0
    return max(1.0, min(float(MAX_WIDEN), 1.5 * n_items / n_ok))


def widened(n: int, widen: float, n_items: int) -> int:
    """Neighbours to ask for: ``n`` widened, plus a margin, at most the catalogue."""
    return min(math.ceil(n * widen) + 10, n_items)


async def filtered_search(
    engine: RetrievalEngine,
    index: VectorIndex,
    vectors: np.ndarray,
    q: np.ndarray,
    n: int,
    ok: np.ndarray,
    n_ok: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` neighbours of ``q`` among the items where ``ok`` is True, best first.

    Exact over the allowed rows when that is cheap (:func:`exact_is_cheaper`); else one ANN
    query for ``n`` times the widen factor, kept to allowed items, and the exact scan when
    it leaves fewer than ``n`` while more are allowed.
    """
    n_ok = int(np.count_nonzero(ok)) if n_ok is None else n_ok
    if exact_is_cheaper(index, n_ok):
        return subset_search(vectors, np.flatnonzero(ok), q, n)
    want = widened(n, widen_factor(engine.n_items, n_ok), engine.n_items)
    ids, scores = await engine.ann_query(index, q, want)
    keep = ids >= 0
    keep &= ok[np.where(keep, ids, 0)]
    ids, scores = ids[keep], scores[keep]
    if len(ids) < min(n, n_ok):
        return subset_search(vectors, np.flatnonzero(ok), q, n)
    return ids[:n], scores[:n]


def top_up(
    engine: RetrievalEngine, cs: CandidateSet, exclude: np.ndarray, allowed: np.ndarray, k: int
) -> CandidateSet:
    """``cs`` with the most popular allowed, not excluded items it lacks appended (fused
    score 0, found by no source) until it holds ``k`` or no such item is left."""
    need = k - len(cs.item_idx)
    if need <= 0:
        return cs
    skip = exclude.copy()
    skip[cs.item_idx] = True
    extra = most_popular(engine.popular_order, need, skip, allowed)
    if not len(extra):
        return cs
    m, s = len(extra), cs.scores.shape[1]
    return CandidateSet(
        np.concatenate([cs.item_idx, extra.astype(np.int64)]),
        np.concatenate([cs.scores, np.zeros((m, s), np.float32)]),
        np.concatenate([cs.ranks, np.full((m, s), cs.missing_rank, np.int32)]),
        np.concatenate([cs.source_mask, np.zeros(m, np.int64)]),
        np.concatenate([cs.fused, np.zeros(m, np.float32)]),
        cs.source_names,
        cs.missing_rank,
    )
