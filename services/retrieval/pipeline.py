"""The candidates pipeline: one ``POST /v1/candidates`` request, top to bottom.

1. :func:`candidates` checks the ids, reads the user's history and cached query vector
   (one Redis round trip), and builds the exclusion and filter masks;
2. :func:`user_vector` runs the query tower unless the vector was cached;
3. :func:`source_lists` asks every candidate source the ranker was trained with: the
   two-tower and content ANN queries run in worker threads while the neighbour tables
   (EASE, item-kNN) and popularity are computed here;
4. :func:`merge` merges them exactly as training did (:mod:`shared.model.candidates`);
5. fresh items (:mod:`services.retrieval.fresh`) are scored exactly and inserted;
6. :func:`~services.retrieval.columns.build_columns` turns the result into the columns
   the gateway forwards to ranking.

The loaded state every step reads (catalogue, towers, indexes, tables) is
:class:`~services.retrieval.engine.RetrievalEngine`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any

import numpy as np

from services.retrieval.columns import (
    build_columns,
    candidate_rows,
    columns_in_range,
    rows_to_columns,
)
from services.retrieval.engine import RetrievalEngine
from services.retrieval.filtering import (
    allowed_mask,
    exact_is_cheaper,
    subset_search,
    top_up,
    widen_factor,
    widened,
)
from services.retrieval.lists import most_popular, normalise
from shared.contracts.errors import NotFoundError
from shared.contracts.internal_v1 import (
    CandidateColumns,
    CandidatesRequest,
    CandidatesResponse,
    dedupe_keep_last,
)
from shared.model.candidates import CandidateSet, merge_candidates
from shared.model.item_knn import score_from_history
from shared.model.search import VectorIndex
from shared.serving.timing import stage

Lists = dict[str, tuple[np.ndarray, np.ndarray]]


async def candidates(engine: RetrievalEngine, req: CandidatesRequest) -> CandidatesResponse:
    """Merged candidates for a known, new or anonymous user, best first, as columns."""
    engine.check_items(list(dict.fromkeys([*req.history, *req.check_item_ids])))
    features = req.user_features.model_dump(exclude_none=True) if req.user_features else None
    cacheable = not req.history and not features
    upos = engine.user_position(req.user_id)
    history, status, cached, seen_since, hidden = await user_history(
        engine, req.user_id, req.history, vector_key=vector_key(req.user_id, cacheable),
        upos=upos,
    )
    if hidden:  # a hidden item no longer speaks for the user's taste
        history = [h for h in history if h not in hidden]
    # A user who sent any event is known, a low rating or a hide included (seen, hidden).
    sent = bool(history or seen_since or hidden)
    if req.user_id is not None and upos < 0 and not sent and req.user_features is None:
        raise NotFoundError(
            f"user {req.user_id!r} is unknown: no training history and no feedback events; "
            "send events with POST /v1/users/{user_id}/events, or ask for anonymous "
            "recommendations with POST /v1/recommendations and recent_item_ids"
        )
    pos = engine.catalogue.positions(history)
    hist_pos = pos[pos >= 0]
    vec, vstatus = await user_vector(engine, req.user_id, hist_pos, features, cacheable, cached)
    exclude = np.zeros(engine.n_items, dtype=bool)
    excluded_ids = set(req.exclude_item_ids)
    if req.exclude_seen:
        # Everything seen: the full training history (the bundle's, not the recent
        # window in `history`), every event since (the store's seen set) and the request's.
        exclude[engine.seen_positions(upos)] = True
        exclude[hist_pos] = True
        if seen_since:
            since = engine.catalogue.positions(sorted(seen_since))
            exclude[since[since >= 0]] = True
        excluded_ids |= set(history) | seen_since
    ex_pos = engine.catalogue.positions(req.exclude_item_ids)
    exclude[ex_pos[ex_pos >= 0]] = True
    # Hidden or disliked items never come back, whatever exclude_seen: the training
    # data's (the bundle's) and every live negative event's (the store's hidden set).
    exclude[engine.hidden_positions(upos)] = True
    if hidden:
        hid = engine.catalogue.positions(sorted(hidden))
        exclude[hid[hid >= 0]] = True
        excluded_ids |= hidden
    allowed = allowed_mask(engine, req.filter, req.genres)
    cquery = content_query(engine, hist_pos)  # the content source's and fresh items' query
    lists = await source_lists(engine, vec, hist_pos, exclude, allowed, content_q=cquery)
    with stage("merge"):
        cs = merge(engine, lists, exclude, allowed, req.k)
        matched = None
        if allowed is not None:
            cs = top_up(engine, cs, exclude, allowed, req.k)
            matched = int(np.count_nonzero(allowed & ~exclude))
    with stage("fresh"):
        fresh = engine.fresh.candidates(
            vec, cquery, excluded_ids, req.genres, req.k, req.filter
        )
        if matched is not None:
            matched += engine.fresh.count_matching(excluded_ids, req.genres, req.filter)
    with stage("build"):
        cache = (
            vstatus
            if vstatus in ("hit", "miss", "bypass")
            else ("bypass" if status == "bypass" else "none")
        )
        fields: dict[str, Any] = {"user_id": req.user_id, "history": history,
                                  "model_version": engine.version, "cache": cache,
                                  "matched": matched}  # fmt: skip
        if not fresh and columns_in_range(cs):
            # Our own numbers, checked above: no second validation of every entry.
            built = CandidateColumns.model_construct(**build_columns(engine, cs))
            built.attach_arrays(engine.version, cs)  # for a ranker in this process
            return CandidatesResponse.model_construct(columns=built, **fields)
        columns = (
            build_columns(engine, cs)
            if not fresh
            else rows_to_columns(engine.fresh.insert(candidate_rows(engine, cs), fresh, req.k))
        )
        return CandidatesResponse.model_validate({"columns": columns, **fields})


# ---------------------------------------------------------------------- 1-2: the user
def vector_key(user_id: str | None, cacheable: bool) -> str | None:
    """The cache key of a user's query vector, or None when it must not be cached."""
    return f"u{user_id}" if cacheable and user_id is not None else None


async def user_history(
    engine: RetrievalEngine,
    user_id: str | None,
    extra: list[str],
    *,
    vector_key: str | None = None,
    upos: int | None = None,
) -> tuple[list[str], str, tuple[np.ndarray | None, str], set[str], set[str]]:
    """Known history + recent events + request items (ids, most recent last).

    With ``vector_key``, the user's cached query vector is read in the same Redis round
    trip; it comes back as ``(vector or None, cache status)``. The last two values are
    every item id the user sent events about since the state began (the store's seen set,
    which the capped recent list does not hold in full) and those they hid or disliked.
    ``upos`` is the user's position when the caller looked it up already.
    """
    known: list[str] = []
    status = "none"
    cached: tuple[np.ndarray | None, str] = (None, "none")
    seen: set[str] = set()
    hidden: set[str] = set()
    if user_id is not None:
        pos = engine.user_position(user_id) if upos is None else upos
        if pos >= 0:
            known = engine.catalogue.item_ids[engine.histories[pos]].tolist()
        with stage("cache"):
            read = await engine.store.recent_and_vector(user_id, engine.version, vector_key)
        if vector_key is not None:
            cached = (read.vector, read.vector_status)
        status, seen, hidden = read.status, read.seen, read.hidden
        known += read.recent
    return dedupe_keep_last(known + list(extra)), status, cached, seen, hidden


async def user_vector(
    engine: RetrievalEngine,
    user_id: str | None,
    hist_pos: np.ndarray,
    features: dict[str, Any] | None,
    cacheable: bool,
    cached: tuple[np.ndarray | None, str] | None = None,
) -> tuple[np.ndarray, str]:
    """The query-tower vector, from the cache when possible.

    ``cached`` is what :func:`user_history` already read; without it the cache is read here.
    """
    key = vector_key(user_id, cacheable)
    status: str = "none"
    if key is not None:
        if cached is None:
            with stage("cache"):
                vec_hit, status = await engine.store.get_vector(engine.version, key)
        else:
            vec_hit, status = cached
        if vec_hit is not None:
            return vec_hit, status
    with stage("query_tower"):
        vec = engine.query_tower.encode(
            engine.encoder, [user_id], [hist_pos[-engine.encoder.history_length :]], [features]
        )[0]
    if key is not None:
        with stage("cache"):
            stored = await engine.store.set_vector(engine.version, key, vec)
        status = "bypass" if stored == "bypass" else status
    return vec, status


def content_query(engine: RetrievalEngine, hist_pos: np.ndarray) -> np.ndarray | None:
    """The content source's query: the mean BERT vector of the recent history (None if empty)."""
    if not len(hist_pos):
        return None
    window = engine.content_vectors[hist_pos[-engine.history_window :]]
    return normalise(window.mean(axis=0)).astype(np.float32)


# ---------------------------------------------------------------------- 3: the sources
async def source_lists(
    engine: RetrievalEngine,
    vec: np.ndarray,
    hist_pos: np.ndarray,
    exclude: np.ndarray,
    allowed: np.ndarray | None,
    *,
    content_q: np.ndarray | None = None,
) -> Lists:
    """Per source, ``(item positions, scores)`` best first (catalogue items only).

    ``content_q`` is :func:`content_query` of ``hist_pos`` when the caller computed it.

    The ANN queries are submitted to the ANN threads first; the neighbour-table and
    popularity lists are computed on this thread while they run (hnswlib and Annoy
    release the GIL), so a request costs about the longer of the two, not their sum.
    The ``ann`` stage is therefore the time spent *waiting* for the ANN answers after
    the other sources were done (the part on the request's critical path).
    """
    n_excluded = int(np.count_nonzero(exclude))
    extra = n_excluded if len(hist_pos) else 0
    widen = 1  # a filter widens each ANN query by its own selectivity (below)
    depth = engine.depth
    # Neighbours to fetch so that `depth` survive the exclusions and the filter: at
    # most every excluded item (capped), at first only half a depth of them.
    full = min((depth + min(extra, 5 * depth)) * widen, engine.n_items)
    first = min((depth + min(extra, depth // 2)) * widen, full)
    lists: Lists = {}
    queries: dict[str, Coroutine[Any, Any, tuple[np.ndarray, np.ndarray]]] = {}
    try:
        with stage("ann"):
            ok = None if allowed is None else allowed & ~exclude
            n_ok = 0 if ok is None else int(np.count_nonzero(ok))
            if ok is not None:
                grow = widen_factor(engine.n_items, n_ok)
                first = widened(first, grow, engine.n_items)
                full = max(widened(full, grow, engine.n_items), first)
            for name, index, q in _ann_queries(engine, vec, hist_pos, content_q):
                if ok is not None and exact_is_cheaper(index, n_ok):
                    # A selective filter: exact over the allowed rows, no ANN query.
                    queries[name] = _done(
                        subset_search(_vectors(engine, name), np.flatnonzero(ok), q, depth)
                    )
                    continue
                pending = engine.start_query(index, q, first)
                queries[name] = search(
                    engine, index, pending, q, first, full, exclude, allowed,
                    vectors=_vectors(engine, name),
                )
        with stage("sources"):
            for name, (nb, w) in engine.tables.items():
                if len(hist_pos):
                    lists[name] = score_from_history(hist_pos, nb, w, engine.n_items, k=depth)
            if "popularity" in engine.source_names:
                top = most_popular(engine.popular_order, depth, exclude, allowed, n_excluded)
                lists["popularity"] = (top, engine.catalogue.popularity[top].astype(np.float32))
    except BaseException:
        for waiting in queries.values():
            waiting.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    with stage("ann"):
        found = await asyncio.gather(*queries.values())
    return {**dict(zip(queries, found, strict=True)), **lists}


async def _done(result: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return result


def _vectors(engine: RetrievalEngine, source: str) -> np.ndarray:
    return engine.item_vectors if source == "two_tower" else engine.content_vectors


def _ann_queries(
    engine: RetrievalEngine, vec: np.ndarray, hist_pos: np.ndarray,
    content_q: np.ndarray | None = None,
) -> list[tuple[str, VectorIndex, np.ndarray]]:
    """``(source, index, query vector)`` of each ANN source this request uses."""
    out: list[tuple[str, VectorIndex, np.ndarray]] = []
    if "two_tower" in engine.source_names:
        out.append(("two_tower", engine.item_index, vec.astype(np.float32)))
    q = content_q if content_q is not None else content_query(engine, hist_pos)
    if "content" in engine.source_names and q is not None:
        out.append(("content", engine.content_index, q))
    return out


async def search(
    engine: RetrievalEngine,
    index: VectorIndex,
    pending: Awaitable[tuple[np.ndarray, np.ndarray]],
    q: np.ndarray,
    first: int,
    full: int,
    exclude: np.ndarray,
    allowed: np.ndarray | None,
    *,
    vectors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The first query's answer (``pending``), or top ``full`` if it leaves < ``depth`` usable.

    Under a filter (``allowed``) whose allowed items the larger query still leaves short of
    ``depth``, the allowed rows of ``vectors`` are scanned exactly.

    An ANN query's cost grows with the neighbours asked for; most users' excluded items
    are a small part of their nearest neighbours, so a first, smaller query usually
    leaves ``depth`` candidates and the larger one runs only when it does not.
    """
    ids, scores = await pending
    if first < full and len(ids) == first:
        valid = ids >= 0
        ok = valid & ~exclude[np.where(valid, ids, 0)]
        if allowed is not None:
            ok &= allowed[np.where(valid, ids, 0)]
        if int(np.count_nonzero(ok)) < engine.depth:
            ids, scores = await engine.ann_query(index, q, full)
    if allowed is not None and vectors is not None:
        okm = allowed & ~exclude
        valid = ids >= 0
        usable = int(np.count_nonzero(valid & okm[np.where(valid, ids, 0)]))
        if usable < engine.depth and usable < int(np.count_nonzero(okm)):
            return subset_search(vectors, np.flatnonzero(okm), q, engine.depth)
    return ids, scores


# ---------------------------------------------------------------------- 4: the merge
def merge(
    engine: RetrievalEngine,
    lists: Lists,
    exclude: np.ndarray,
    allowed: np.ndarray | None,
    k: int,
) -> CandidateSet:
    """Merge the source lists exactly as training did."""
    trimmed = {}
    for name, (idx, sc) in lists.items():
        keep = (idx >= 0) & np.isfinite(sc)
        idx, sc = idx[keep], sc[keep]
        ok = ~exclude[idx]
        if allowed is not None:
            ok &= allowed[idx]
        trimmed[name] = (idx[ok][: engine.depth], sc[ok][: engine.depth])
    return merge_candidates(
        trimmed,
        engine.source_names,
        engine.n_items,
        fill_sources=engine.fill_sources,
        min_candidates=k if allowed is not None else min(engine.min_candidates, k),
        max_candidates=k,
        missing_rank=engine.depth + 1,
    )
