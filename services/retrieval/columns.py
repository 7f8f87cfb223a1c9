"""Retrieval's answer as columns: the merged candidates in the shape the gateway forwards
to ranking (:class:`~shared.contracts.internal_v1.CandidateColumns`), built from the arrays
at once; and the row form used on the rare answer that fresh items enter."""

from __future__ import annotations

from typing import Any

import numpy as np

from services.retrieval.engine import RetrievalEngine
from shared.contracts.internal_v1 import MAX_CANDIDATES, MAX_SCORE
from shared.model.candidates import CandidateSet


def columns_in_range(cs: CandidateSet) -> bool:
    """Whether :func:`build_columns` of ``cs`` passes :class:`CandidateColumns`' checks
    (finite scores within +-``MAX_SCORE``, ranks >= 1 where a source proposed the item),
    checked on the arrays at once rather than entry by entry."""
    found = cs.ranks < cs.missing_rank
    shown = np.where(found, cs.scores, 0.0)
    return bool(
        np.isfinite(cs.fused).all()
        and np.isfinite(shown).all()
        and (np.abs(cs.fused) <= MAX_SCORE).all()
        and (np.abs(shown) <= MAX_SCORE).all()
        and (cs.ranks[found] >= 1).all()
        and len(cs) <= MAX_CANDIDATES
    )


def build_columns(engine: RetrievalEngine, cs: CandidateSet) -> dict[str, Any]:
    """The merged candidates as :class:`~shared.contracts.internal_v1.CandidateColumns`."""
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
        # Object arrays: Python floats and ints, None where the source did not propose it.
        scores, ranks = cs.scores[:, j].astype(object), cs.ranks[:, j].astype(object)
        scores[~hit] = None
        ranks[~hit] = None
        source_scores[name] = scores.tolist()
        source_ranks[name] = ranks.tolist()
    titles, years, genres = c.titles, c.years, c.genres
    return {
        "item_ids": c.item_ids[cs.item_idx].tolist(),
        "scores": cs.fused.tolist(),
        "sources": [names[f] if f >= 0 else "popular" for f in first],
        "titles": [titles[p] for p in idx],
        "years": [years[p] for p in idx],
        "genres": [genres[p] for p in idx],
        "source_scores": source_scores,
        "source_ranks": source_ranks,
    }


def candidate_rows(engine: RetrievalEngine, cs: CandidateSet) -> list[dict[str, Any]]:
    """The merged candidates as one dict each, for the rare answer fresh items enter."""
    cols = build_columns(engine, cs)
    rows = []
    for j, iid in enumerate(cols["item_ids"]):
        rows.append(
            {
                "item_id": iid,
                "title": cols["titles"][j],
                "year": cols["years"][j],
                "genres": cols["genres"][j],
                "score": cols["scores"][j],
                "source": cols["sources"][j],
                "source_scores": {
                    n: v[j] for n, v in cols["source_scores"].items() if v[j] is not None
                },
                "source_ranks": {
                    n: v[j] for n, v in cols["source_ranks"].items() if v[j] is not None
                },
            }
        )
    return rows


def rows_to_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Candidate rows (as :func:`candidate_rows` makes them) as column fields."""
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
