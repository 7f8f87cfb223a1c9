"""Warm-up: a new engine answers representative requests before it is served.

Readiness means warm (a service is ready only once every code path has run once), so
the first real request after ``/health/ready`` says 200 costs what the hundredth does:
no first-call costs of the query tower, the searches (exact, Annoy or HNSW, both vector
sets), the neighbour tables, the merge, pydantic's serialisers or BERT.

:func:`warm_up` is blocking: it runs in the worker thread that builds the engine (at
start and on every reload), on its own event loop, against a shallow copy of the engine
whose user state is in process, so warm-up requests neither read nor write anyone's
state in Redis.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time

from services.retrieval import items, pipeline
from services.retrieval.engine import RetrievalEngine
from shared.contracts.internal_v1 import CandidatesRequest, ExplainRequest
from shared.stores.user_state import UserStateStore

log = logging.getLogger("hybridrec.retrieval")


async def _requests(engine: RetrievalEngine) -> list[str]:
    """One request through each code path; returns the names of the paths that ran."""
    ran: list[str] = []
    popular = engine.catalogue.item_ids[engine.popular_order[:10]].tolist()
    known = next((u for u, h in enumerate(engine.histories) if len(h)), -1)
    if known >= 0:
        uid = str(engine.user_ids[known])
        answer = await pipeline.candidates(engine, CandidatesRequest(user_id=uid))
        answer.model_dump_json()
        ran.append(f"known user ({'+'.join(sorted(answer.columns.source_scores))})")
        genre = next((g for gl in engine.catalogue.genres for g in gl), None)
        if genre is not None:
            await pipeline.candidates(
                engine,
                CandidatesRequest(user_id=uid, genres=[genre], exclude_item_ids=popular[:2]),
            )
            ran.append("genre filter")
    anon = await pipeline.candidates(engine, CandidatesRequest(history=popular[:5], k=50))
    anon.model_dump_json()
    ran.append(f"anonymous history ({'+'.join(sorted(anon.columns.source_scores))})")
    await pipeline.candidates(engine, CandidatesRequest(k=50))
    ran.append("no history")
    if popular:
        for mode in ("content", "collaborative"):
            (await items.similar(engine, popular[0], 10, mode)).model_dump_json()
        ran.append("similar content+collaborative")
        items.get_item(engine, popular[0])
        items.explain(engine, ExplainRequest(history=popular[:3], item_ids=popular[3:6]))
        ran.append("item, explain")
    items.search(engine, str(engine.catalogue.titles[0])[:4], 5)
    ran.append("title search")
    encoder = await engine.text_encoder()
    encoder.encode(["a new item's title and overview"])
    ran.append("text encoder")
    return ran


def warm_up(engine: RetrievalEngine) -> float:
    """Run :func:`_requests` on a copy of ``engine`` with in-process user state; seconds."""
    start = time.perf_counter()
    shadow = copy.copy(engine)
    shadow.store = UserStateStore(None)
    shadow._text_lock = asyncio.Lock()  # bound to the warm-up's loop, not the service's
    ran = asyncio.run(_requests(shadow))
    seconds = time.perf_counter() - start
    log.info(
        "retrieval warm-up: bundle %s, %d code paths in %.2f s: %s",
        engine.version, len(ran), seconds, ", ".join(ran),
    )
    return seconds
