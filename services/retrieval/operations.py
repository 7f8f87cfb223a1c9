"""What each retrieval endpoint does, on top of :class:`RetrievalEngine`."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from services.retrieval.engine import RetrievalEngine
from services.retrieval.lists import normalise
from shared.contracts.errors import DependencyUnavailableError, NotFoundError
from shared.contracts.internal_v1 import (
    CandidatesRequest,
    CandidatesResponse,
    ExplainRequest,
    ExplainResponse,
    Explanation,
    NewItemRequest,
)
from shared.contracts.public_v1 import ItemDetail, ScoredItem, SimilarItems
from shared.model.candidates import CandidateSet
from shared.model.text import TextEncoder, item_text
from shared.serving.timing import stage
from shared.stores.fresh_items import decode_vector, encode_vector


def _meta(engine: RetrievalEngine, item_id: int, pos: int) -> dict[str, Any]:
    if pos >= 0:
        c = engine.catalogue
        return {"title": c.titles[pos], "year": c.years[pos], "genres": c.genres[pos]}
    rec = engine.fresh.records[item_id]
    return {"title": rec["title"], "year": rec.get("year"), "genres": list(rec.get("genres", []))}


async def candidates(engine: RetrievalEngine, req: CandidatesRequest) -> CandidatesResponse:
    """Merged candidates for a known, new or anonymous user."""
    engine.check_items(list(dict.fromkeys([*req.history, *req.check_item_ids])))
    features = req.user_features.model_dump(exclude_none=True) if req.user_features else None
    cacheable = not req.history and not features
    history, status, cached = await engine.user_history(
        req.user_id, req.history, vector_key=engine.vector_key(req.user_id, cacheable)
    )
    upos = engine.user_position(req.user_id)
    if req.user_id is not None and upos < 0 and not history and req.user_features is None:
        raise NotFoundError(
            f"user {req.user_id} is unknown: no training history and no feedback events; "
            "send events with POST /v1/users/{user_id}/events, or ask for anonymous "
            "recommendations with POST /v1/recommendations and recent_item_ids"
        )
    pos = engine.catalogue.positions(history)
    hist_pos = pos[pos >= 0]
    vec, vstatus = await engine.user_vector(req.user_id, hist_pos, features, cacheable, cached)
    exclude = np.zeros(engine.n_items, dtype=bool)
    if req.exclude_seen and len(hist_pos):
        exclude[hist_pos] = True
    ex_pos = engine.catalogue.positions(req.exclude_item_ids)
    exclude[ex_pos[ex_pos >= 0]] = True
    allowed = engine.catalogue.genre_mask(req.genres) if req.genres else None
    lists = await engine.source_lists(vec, hist_pos, exclude, allowed)
    with stage("merge"):
        cs = engine.merge(lists, exclude, allowed, req.k)
    excluded_ids = set(req.exclude_item_ids) | (set(history) if req.exclude_seen else set())
    with stage("fresh"):
        fresh = engine.fresh_candidates(vec, hist_pos, excluded_ids, req.genres, req.k)
    with stage("build"):
        if not fresh:
            columns = _candidate_columns(engine, cs)
        else:
            rows = _add_fresh(engine, _candidate_list(engine, cs), fresh, req.k)
            columns = _rows_to_columns(rows)
    cache = (
        vstatus
        if vstatus in ("hit", "miss", "bypass")
        else ("bypass" if status == "bypass" else "none")
    )
    with stage("build"):
        return CandidatesResponse.model_validate(
            {
                "user_id": req.user_id,
                "columns": columns,
                "history": history,
                "model_version": engine.version,
                "cache": cache,
            }
        )


def _candidate_list(engine: RetrievalEngine, cs: CandidateSet) -> list[dict[str, Any]]:
    """The merged candidates, one dict each with its per-source evidence, for the rare
    answer that fresh items enter (:func:`_add_fresh` inserts them by score)."""
    c = engine.catalogue
    names = cs.source_names
    idx = cs.item_idx.tolist()
    ids = c.item_ids[cs.item_idx].tolist()
    found = (cs.ranks < cs.missing_rank).tolist()
    scores, ranks, fused = cs.scores.tolist(), cs.ranks.tolist(), cs.fused.tolist()
    items: list[dict[str, Any]] = []
    for j, p in enumerate(idx):
        hit = [s for s, ok in enumerate(found[j]) if ok]
        sc, rk = scores[j], ranks[j]
        items.append(
            {
                "item_id": ids[j],
                "title": c.titles[p],
                "year": c.years[p],
                "genres": c.genres[p],
                "score": fused[j],
                "source": names[hit[0]] if hit else "popular",
                "source_scores": {names[s]: sc[s] for s in hit},
                "source_ranks": {names[s]: rk[s] for s in hit},
            }
        )
    return items


def _candidate_columns(engine: RetrievalEngine, cs: CandidateSet) -> dict[str, Any]:
    """The merged candidates as :class:`CandidateColumns` fields (same content as the rows)."""
    c = engine.catalogue
    names = cs.source_names
    idx = cs.item_idx.tolist()
    found = cs.ranks < cs.missing_rank  # [m, s]
    first = np.where(found.any(axis=1), found.argmax(axis=1), -1).tolist()
    source_scores: dict[str, list[float | None]] = {}
    source_ranks: dict[str, list[int | None]] = {}
    for j, name in enumerate(names):
        hit = found[:, j]
        if not hit.any():
            continue
        flags = hit.tolist()
        scores, ranks = cs.scores[:, j].tolist(), cs.ranks[:, j].tolist()
        source_scores[name] = [v if f else None for v, f in zip(scores, flags, strict=True)]
        source_ranks[name] = [r if f else None for r, f in zip(ranks, flags, strict=True)]
    return {
        "item_ids": c.item_ids[cs.item_idx].tolist(),
        "scores": cs.fused.tolist(),
        "sources": [names[f] if f >= 0 else "popular" for f in first],
        "titles": [c.titles[p] for p in idx],
        "years": [c.years[p] for p in idx],
        "genres": [c.genres[p] for p in idx],
        "source_scores": source_scores,
        "source_ranks": source_ranks,
    }


def _rows_to_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Candidate dicts (as :func:`_candidate_list` makes them) as column fields."""
    names = list(dict.fromkeys(n for r in rows for n in (*r["source_scores"], *r["source_ranks"])))
    return {
        "item_ids": [r["item_id"] for r in rows],
        "scores": [r["score"] for r in rows],
        "sources": [r["source"] for r in rows],
        "titles": [r["title"] for r in rows],
        "years": [r["year"] for r in rows],
        "genres": [r["genres"] for r in rows],
        "source_scores": {
            n: [r["source_scores"].get(n) for r in rows]
            for n in names
            if any(n in r["source_scores"] for r in rows)
        },
        "source_ranks": {
            n: [r["source_ranks"].get(n) for r in rows]
            for n in names
            if any(n in r["source_ranks"] for r in rows)
        },
    }


def _add_fresh(
    engine: RetrievalEngine,
    items: list[dict[str, Any]],
    fresh: list[tuple[int, float, str]],
    k: int,
) -> list[dict[str, Any]]:
    """Fresh items, each entering at the fused score of the candidate it beats."""
    if fresh:
        # A fresh item enters at the fused score of the catalogue candidate it beats.
        for iid, score, source in fresh:
            at = sum(1 for it in items if it["source_scores"].get(source, -np.inf) > score)
            fused = items[at]["score"] if at < len(items) else 0.0
            items.insert(
                at,
                {
                    "item_id": iid,
                    "score": fused + 1e-6,
                    "source": "fresh",
                    "source_scores": {source: score},
                    "source_ranks": {},
                    **_meta(engine, iid, -1),
                },
            )
        items = items[:k]
    return items


async def similar(engine: RetrievalEngine, item_id: int, k: int, mode: str) -> SimilarItems:
    """Content (BERT) or collaborative (item-tower) neighbours of one item."""
    pos = int(engine.catalogue.positions([item_id])[0])
    if pos < 0 and item_id not in engine.fresh.records:
        engine.catalogue.position(item_id)  # raises the 404
    if mode == "content":
        index, vectors, fresh_vecs = (
            engine.content_index,
            engine.content_vectors,
            engine.fresh.content,
        )
        key = "content"
    else:
        index, vectors, fresh_vecs = engine.item_index, engine.item_vectors, engine.fresh.vectors
        key = "vector"
    q = vectors[pos] if pos >= 0 else decode_vector(engine.fresh.records[item_id][key])
    with stage("ann"):
        ids, scores = await engine.ann_query(
            index, np.asarray(q, np.float32), min(k + 1, engine.n_items)
        )
    found = [
        (int(engine.catalogue.item_ids[i]), float(s), int(i))
        for i, s in zip(ids, scores, strict=True)
        if i >= 0 and i != pos
    ]
    if len(engine.fresh.ids):
        fs = fresh_vecs @ np.asarray(q, np.float32)
        found += [
            (int(engine.fresh.ids[j]), float(fs[j]), -1)
            for j in range(len(fs))
            if int(engine.fresh.ids[j]) != item_id
        ]
    found.sort(key=lambda t: -t[1])
    items = [
        ScoredItem(item_id=iid, score=s, rank=r + 1, **_meta(engine, iid, p))
        for r, (iid, s, p) in enumerate(found[:k])
    ]
    return SimilarItems(
        item_id=item_id,
        mode=mode,
        items=items,  # type: ignore[arg-type]
        model_version=engine.version,
    )


def get_item(engine: RetrievalEngine, item_id: int) -> ItemDetail:
    """One item's details (catalogue or fresh)."""
    pos = int(engine.catalogue.positions([item_id])[0])
    if pos >= 0:
        return ItemDetail.model_validate(engine.catalogue.record(pos))
    rec = engine.fresh.records.get(item_id)
    if rec is None:
        engine.catalogue.position(item_id)  # raises the 404
        raise AssertionError("unreachable")
    return ItemDetail(
        item_id=item_id,
        title=rec["title"],
        year=rec.get("year"),
        genres=rec.get("genres", []),
        tags=rec.get("tags", []),
        overview=rec.get("overview"),
        popularity=0,
        fresh=True,
    )


def search(engine: RetrievalEngine, q: str, limit: int) -> list[ItemDetail]:
    """Title search over the catalogue, then fresh items."""
    out = [
        ItemDetail.model_validate(engine.catalogue.record(p))
        for p in engine.catalogue.search(q, limit)
    ]
    if len(out) < limit and engine.fresh.records:
        words = q.lower().split()
        for iid, rec in engine.fresh.records.items():
            if all(w in rec["title"].lower() for w in words):
                out.append(get_item(engine, iid))
    return out[:limit]


async def add_item(engine: RetrievalEngine, req: NewItemRequest) -> ItemDetail:
    """Embed a new item (BERT + candidate tower, content path) and store it durably."""
    async with engine._text_lock:
        if engine._text_encoder is None:
            engine._text_encoder = TextEncoder(engine.settings.text_model)
    text = item_text(req.title, req.year, req.genres, req.tags, req.overview)
    content = (await asyncio.to_thread(engine._text_encoder.encode, [text]))[0]
    vector = engine.candidate_tower.encode_new_items(
        engine.encoder, content[None, :], [req.genres], [req.year]
    )[0]
    record = {
        **req.model_dump(mode="json"),
        "content": encode_vector(content),
        "vector": encode_vector(vector),
    }
    min_id = max(engine.catalogue.max_item_id, *(engine.fresh.records or [0])) + 1
    stored = await engine.fresh_store.add(record, min_id)
    await engine.refresh_fresh_items()
    return get_item(engine, int(stored["item_id"]))


async def push_history(engine: RetrievalEngine, user_id: int, item_ids: list[int]) -> None:
    """Append to a user's recent history and drop the cached vector.

    Raises:
        DependencyUnavailableError: Redis did not take the update (503: the caller retries).
    """
    engine.check_items(item_ids)
    if await engine.store.push_recent(user_id, item_ids) == "bypass":
        raise DependencyUnavailableError(
            f"the recent history of user {user_id} was not stored: Redis is unavailable; "
            "retry once it answers again (the gateway queues and retries such updates)"
        )
    await engine.store.invalidate(engine.version, user_id)


def explain(engine: RetrievalEngine, req: ExplainRequest) -> ExplainResponse:
    """For each item, the history item it is most similar to by content."""
    hist = [i for i in req.history if engine.catalogue.positions([i])[0] >= 0][-50:]
    out = []
    if not hist:
        return ExplainResponse(items=[Explanation(item_id=i, reasons=[]) for i in req.item_ids])
    hpos = engine.catalogue.positions(hist)
    hvec = engine.content_vectors[hpos]
    for iid in req.item_ids:
        pos = int(engine.catalogue.positions([iid])[0])
        if pos >= 0:
            v = engine.content_vectors[pos]
        elif iid in engine.fresh.records:
            v = engine.fresh.content[int(np.flatnonzero(engine.fresh.ids == iid)[0])]
        else:
            out.append(Explanation(item_id=iid, reasons=[]))
            continue
        sims = hvec @ normalise(np.asarray(v, np.float32))
        best = int(np.argmax(sims))
        title = engine.catalogue.titles[int(hpos[best])]
        out.append(Explanation(item_id=iid, reasons=[f"similar to {title}, which you watched"]))
    return ExplainResponse(items=out)
