"""Warm-up: the gateway is ready only after one recommendation went through retrieval.

Readiness means warm. The gateway holds no model; what is cold at start are its
clients (connection pools, keep-alive connections, DNS), the request and response
models and the path through retrieval, ranking and the explanation call. Once retrieval
is ready, :func:`keep_warm` sends one representative recommendation (an anonymous user
with the bundle's most popular items as history, explained) through
:meth:`~services.gateway.core.GatewayCore.recommend`; readiness waits for it. Ranking
being down does not hold readiness back (the gateway serves retrieval's order then):
the loop keeps going until a recommendation also went through ranking, once it is up.
Nothing is written to the result cache or any user's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from services.gateway.core import GatewayCore
from shared.contracts.errors import HybridrecError
from shared.contracts.public_v1 import RecommendationRequest

log = logging.getLogger("hybridrec.gateway")
EVERY_S = 0.5


@dataclass
class Warmth:
    """Which paths a warm-up recommendation went through (answered or cut, it ran)."""

    retrieval: bool = False
    ranking: bool = False

    def check(self) -> str:
        """The ``warm_up`` readiness check."""
        if self.retrieval:
            return "ok" if self.ranking else "ok (ranking path not warmed yet: ranking down)"
        return "warming: no recommendation through retrieval yet"


def _request(core: GatewayCore, with_history: bool) -> RecommendationRequest:
    popular = [str(it["item_id"]) for it in (core.popular.items if core.popular else [])]
    return RecommendationRequest(
        recent_item_ids=popular[:3] if with_history else [], k=10, explain=True
    )


async def warm_once(core: GatewayCore) -> list[str]:
    """One recommendation through the whole path; returns its ``degraded`` list."""
    try:
        rec = await core.recommend(_request(core, True), None)
    except HybridrecError as exc:  # e.g. the popular items are not in retrieval's bundle
        log.warning("gateway warm-up with history failed (%s); warming without it", exc)
        rec = await core.recommend(_request(core, False), None)
    rec.model_dump_json()
    return list(rec.degraded)


async def keep_warm(core: GatewayCore, warmth: Warmth, every_s: float = EVERY_S) -> None:
    """Background task: one recommendation once retrieval is ready (readiness waits for
    it), and one more once ranking is ready if it was not then. Ends after that; while
    waiting it only polls the dependencies' readiness."""
    start = time.monotonic()
    while not warmth.ranking:
        if not await core.retrieval.ready():
            await asyncio.sleep(every_s)
            continue
        ranking_up = await core.ranking.ready()
        if warmth.retrieval and not ranking_up:
            await asyncio.sleep(every_s)
            continue
        t0 = time.monotonic()
        try:
            degraded = await warm_once(core)
        except Exception:  # readiness keeps saying "warming" meanwhile
            log.warning("gateway warm-up failed; retrying", exc_info=True)
            await asyncio.sleep(every_s)
            continue
        warmth.retrieval, warmth.ranking = True, ranking_up
        log.info(
            "gateway warm-up: one recommendation through retrieval%s in %.2f s "
            "(%.1f s after start; degraded: %s)",
            " and ranking" if ranking_up else " (ranking down)",
            time.monotonic() - t0,
            time.monotonic() - start,
            degraded or "none",
        )
