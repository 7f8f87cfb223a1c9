"""Warm-up: a new ranking engine scores representative requests before it is served.

Readiness means warm: the features, the ranker's forward pass and the response model
run once for a known user and for an anonymous one (and once with a fresh item among
the candidates) before ``/health/ready`` says 200. Blocking: :func:`warm_up` runs in
the worker thread that builds the engine, at start and on every reload.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from services.ranking.engine import RankingEngine
from shared.contracts import bundle_layout as L
from shared.contracts.internal_v1 import RankRequest

log = logging.getLogger("hybridrec.ranking")
N_CANDIDATES = 100


def _request(engine: RankingEngine, user_id: str | None, fresh_id: str | None) -> RankRequest:
    """The most popular items as candidates every source proposed, best first."""
    order = np.argsort(-engine.catalogue.popularity, kind="stable")
    ids = engine.catalogue.item_ids[order[:N_CANDIDATES]].tolist()
    history, ids = ids[:5], ids[5:]
    if fresh_id is not None:
        ids.insert(1, fresh_id)
    n = len(ids)
    scores = [1.0 - j / max(n, 1) for j in range(n)]
    return RankRequest.model_validate(
        {
            "user_id": user_id,
            "history": history,
            "k": min(10, n) or None,
            "columns": {
                "item_ids": ids,
                "scores": scores,
                "sources": [engine.source_names[0] if engine.source_names else "popular"] * n,
                "source_scores": {name: scores for name in engine.source_names},
                "source_ranks": {name: list(range(1, n + 1)) for name in engine.source_names},
            },
        }
    )


def warm_up(engine: RankingEngine) -> float:
    """Rank a known user's, an anonymous and a fresh-item request; returns the seconds."""
    start = time.perf_counter()
    users = pd.read_parquet(engine.bundle.path(L.USERS), columns=["user_id"])["user_id"]
    known = str(users.iat[0]) if len(users) else None
    fresh = "warm-up:not-in-the-catalogue"  # a fresh item: ranking keeps its position
    for user, extra in ((known, None), (None, None), (known, fresh)):
        engine.rank(_request(engine, user, extra)).model_dump_json()
    seconds = time.perf_counter() - start
    log.info("ranking warm-up: bundle %s, 3 rank calls in %.2f s", engine.version, seconds)
    return seconds
