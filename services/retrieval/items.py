"""Retrieval's item operations: similar items, lookup, title search, new items, a user's
history update and the reasons shown beside recommendations.

Each treats the bundle's catalogue and the run-time fresh items
(:mod:`services.retrieval.fresh`) as one catalogue.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from services.retrieval import fresh
from services.retrieval.engine import RetrievalEngine
from services.retrieval.filtering import allowed_mask, filtered_search
from services.retrieval.fresh import VectorKind
from services.retrieval.lists import normalise
from shared.contracts.errors import DependencyUnavailableError, ValidationError
from shared.contracts.filters import ItemFilter, fewer_than_k
from shared.contracts.internal_v1 import ExplainRequest, ExplainResponse, Explanation
from shared.contracts.items_v1 import ItemPatch
from shared.contracts.public_v1 import ItemDetail, NewItem, ScoredItem, SimilarItems
from shared.serving.timing import stage
from shared.stores.redis_conn import RedisUnavailable


def _meta(engine: RetrievalEngine, item_id: str, pos: int) -> dict[str, Any]:
    """Title, year and genres of a catalogue item (``pos`` >= 0) or a fresh one."""
    if pos < 0:
        return engine.fresh.meta(item_id)
    c = engine.catalogue
    return {"title": c.titles[pos], "year": c.years[pos], "genres": c.genres[pos]}


def _position(engine: RetrievalEngine, item_id: str) -> int:
    """Catalogue position of an item, -1 for a fresh one; 404 when it is neither."""
    pos = int(engine.catalogue.positions([item_id])[0])
    if pos < 0 and item_id not in engine.fresh:
        engine.catalogue.position(item_id)  # raises the 404 with its message
    return pos


async def similar(
    engine: RetrievalEngine,
    item_id: str,
    k: int,
    mode: str,
    flt: ItemFilter | None = None,
    genres: list[str] | None = None,
) -> SimilarItems:
    """Content (BERT) or collaborative (item-tower) neighbours of one item, available and
    through the filter (``matched`` counts those when fewer than ``k`` come back)."""
    allowed = allowed_mask(engine, flt, genres or [])
    pos = _position(engine, item_id)
    kind: VectorKind = "content" if mode == "content" else "vector"
    if kind == "content":
        index, vectors = engine.content_index, engine.content_vectors
    else:
        index, vectors = engine.item_index, engine.item_vectors
    q = np.asarray(vectors[pos] if pos >= 0 else engine.fresh.vector(item_id, kind), np.float32)
    with stage("ann"):
        if allowed is None:
            ids, scores = await engine.ann_query(index, q, min(k + 1, engine.n_items))
        else:
            if pos >= 0:
                allowed[pos] = False
            ids, scores = await filtered_search(engine, index, vectors, q, k, allowed)
    fresh_ok = [
        (iid, s) for iid, s in engine.fresh.neighbours(q, kind, skip=item_id)
        if engine.fresh.passes(iid, genres or [], flt)
    ]
    found = [
        (str(engine.catalogue.item_ids[i]), float(s), int(i))
        for i, s in zip(ids, scores, strict=True)
        if i >= 0 and i != pos
    ]
    found += [(iid, s, -1) for iid, s in fresh_ok]
    found.sort(key=lambda t: -t[1])
    items = [
        ScoredItem(item_id=iid, score=s, rank=r + 1, **_meta(engine, iid, p))
        for r, (iid, s, p) in enumerate(found[:k])
    ]
    matched = None
    if allowed is not None:
        matched = int(np.count_nonzero(allowed)) + len(fresh_ok)
    return SimilarItems(
        item_id=item_id, mode=mode, items=items, model_version=engine.version,  # type: ignore[arg-type]
        **fewer_than_k(len(items), k, matched),
    )


def get_item(engine: RetrievalEngine, item_id: str) -> ItemDetail:
    """One item's details (catalogue or fresh)."""
    pos = _position(engine, item_id)
    if pos >= 0:
        record = engine.catalogue.record(pos)
        if pos in engine.live.patched:
            record["attributes"], record["available"] = engine.live.patched[pos]
        return ItemDetail.model_validate(record)
    return engine.fresh.detail(item_id)


def search(engine: RetrievalEngine, q: str, limit: int) -> list[ItemDetail]:
    """Title search over the catalogue, then fresh items."""
    out = [
        ItemDetail.model_validate(engine.catalogue.record(p))
        for p in engine.catalogue.search(q, limit)
    ]
    if len(out) < limit:
        out += [engine.fresh.detail(i) for i in engine.fresh.title_matches(q)]
    return out[:limit]


async def add_item(engine: RetrievalEngine, item: NewItem) -> ItemDetail:
    """Embed and store a new item; it is searchable and recommendable at once."""
    return await fresh.add(engine, item)


async def push_history(
    engine: RetrievalEngine,
    user_id: str,
    item_ids: list[str],
    *,
    seen_only: bool = False,
    hidden: bool = False,
) -> None:
    """Append to a user's recent history and drop the cached vector (``seen_only``: only
    remember the items as seen, for ``exclude_seen``; ``hidden``: as seen and hidden, never
    recommended to the user again).

    Raises:
        DependencyUnavailableError: Redis did not take the update (503: the caller retries).
    """
    engine.check_items(item_ids)
    stored = await engine.store.push_recent(
        user_id, item_ids, seen_only=seen_only, hidden=hidden
    )
    if stored == "bypass":
        raise DependencyUnavailableError(
            f"the recent history of user {user_id!r} was not stored: Redis is unavailable; "
            "retry once it answers again (the gateway queues and retries such updates)"
        )
    if hidden or not seen_only:  # the history the cached vector was computed from changed
        await engine.store.invalidate(engine.version, user_id)


def explain(engine: RetrievalEngine, req: ExplainRequest) -> ExplainResponse:
    """For each item, the history item it is most similar to by content."""
    hist = [i for i in req.history if engine.catalogue.positions([i])[0] >= 0][-50:]
    if not hist:
        return ExplainResponse(items=[Explanation(item_id=i, reasons=[]) for i in req.item_ids])
    hpos = engine.catalogue.positions(hist)
    hvec = engine.content_vectors[hpos]
    out = []
    for iid in req.item_ids:
        pos = int(engine.catalogue.positions([iid])[0])
        if pos >= 0:
            v = engine.content_vectors[pos]
        elif iid in engine.fresh:
            v = engine.fresh.vector(iid, "content")
        else:
            out.append(Explanation(item_id=iid, reasons=[]))
            continue
        sims = hvec @ normalise(np.asarray(v, np.float32))
        title = engine.catalogue.titles[int(hpos[int(np.argmax(sims))])]
        out.append(Explanation(item_id=iid, reasons=[f"similar to {title}, which you watched"]))
    return ExplainResponse(items=out)


def check_change(engine: RetrievalEngine, patch: ItemPatch) -> dict[str, Any]:
    """The patch as a stored change, its values typed by the catalogue's attributes.

    Raises:
        ValidationError: An unknown attribute, or a value of the wrong type (422).
    """
    change = patch.change()
    types = engine.catalogue.attribute_types
    known = ", ".join(f"{n} ({t})" for n, t in sorted(types.items())) or "none"
    attrs: dict[str, Any] = {}
    for name, value in (change.get("attributes") or {}).items():
        if name not in types:
            raise ValidationError(
                f"unknown attribute {name!r}; the catalogue's attributes are: {known}",
                attribute=name, known=sorted(types),
            )
        if value is None:
            attrs[name] = None
        elif types[name] == "numeric":
            if isinstance(value, (list, str)):
                raise ValidationError(f"attribute {name!r} is numeric: send a number, "
                                      f"got {value!r}", attribute=name)
            attrs[name] = float(value)
        elif name in engine.catalogue.list_attributes:
            attrs[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        elif isinstance(value, list):
            raise ValidationError(f"attribute {name!r} holds one value: send a string, "
                                  f"got a list", attribute=name)
        else:
            attrs[name] = str(value)
    if "attributes" in change:
        change["attributes"] = attrs
    return change


async def patch_item(engine: RetrievalEngine, item_id: str, patch: ItemPatch) -> ItemDetail:
    """Store a change of an item's attributes or availability and apply it now (every
    replica applies it at its next refresh; the next training run folds it in)."""
    _position(engine, item_id)  # 404 for an unknown item
    change = check_change(engine, patch)
    try:
        await engine.fresh_store.patch(item_id, change)
    except RedisUnavailable as exc:
        raise DependencyUnavailableError(
            f"the change of item {item_id!r} was not stored: Redis did not answer ({exc}); "
            "retry shortly",
            dependency="redis",
        ) from exc
    await fresh.refresh(engine)
    return get_item(engine, item_id)
