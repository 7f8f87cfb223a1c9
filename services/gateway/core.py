"""The gateway's orchestration: retrieval, then ranking, within a deadline.

The gateway holds no model. It calls retrieval for candidates, ranking to order
them, and falls back gracefully: ranking down -> retrieval order with
``degraded: ["ranking"]``; retrieval down -> the bundle's popular items with
``degraded: ["retrieval"]``. Feedback events are :mod:`services.gateway.feedback`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.gateway.feedback import POSITIVE_RATING, FeedbackOps
from services.gateway.history import PendingHistory
from services.gateway.items import ItemOps
from services.gateway.popular import PopularFallback as PopularFallback  # re-exported
from services.gateway.result_cache import CacheStatus, ResultCache, with_request_id
from shared.contracts.errors import DependencyUnavailableError
from shared.contracts.filters import fewer_than_k
from shared.contracts.internal_v1 import (
    CandidateColumns,
    CandidatesRequest,
    ExplainRequest,
    RankRequest,
    dedupe_keep_last,
)
from shared.contracts.public_v1 import (
    MAX_IDS,
    Degraded,
    RecommendationRequest,
    Recommendations,
    ScoredItem,
)
from shared.serving.clients import RankingClient, RetrievalClient
from shared.serving.timing import stage
from shared.stores.events import EventLog
from shared.stores.redis_conn import RedisGuard
from shared.stores.user_state import UserStateStore

log = logging.getLogger("hybridrec.gateway")

DEFAULT_CANDIDATES = 200  # training's default max_candidates


def _excluded(req: RecommendationRequest) -> set[str]:
    """Item ids the answer must not contain."""
    exclude = set(req.exclude_item_ids)
    if req.exclude_seen:
        exclude |= set(req.recent_item_ids) | {r.item_id for r in req.ratings}
    return exclude


class GatewayCore:
    """Everything the gateway's handlers need, created in the app's lifespan."""

    def __init__(
        self,
        *,
        retrieval: RetrievalClient,
        ranking: RankingClient,
        events: EventLog,
        redis: RedisGuard | None,
        popular: PopularFallback | None,
        n_candidates: int | None,
        deadline_s: float,
        retrieval_timeout_s: float,
        ranking_timeout_s: float,
        result_cache: ResultCache | None = None,
        max_in_flight: int = 0,
        user_state: UserStateStore | None = None,
    ) -> None:
        self.retrieval = retrieval
        self.ranking = ranking
        self.events = events
        self.redis = redis
        self.popular = popular
        self.n_candidates = n_candidates
        self.deadline_s = deadline_s
        self.retrieval_timeout_s = retrieval_timeout_s
        self.ranking_timeout_s = ranking_timeout_s
        self.pending_history = PendingHistory()
        self.result_cache = result_cache
        #: The users' live hidden sets, read for the popular fallback (retrieval reads its own).
        self.user_state = user_state
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # recommendations being computed now
        self.cache_writes: set[asyncio.Task[None]] = set()  # answers being stored
        self.items = ItemOps(retrieval, retrieval_timeout_s, self.catalogue_changed)
        self.feedback = FeedbackOps(
            retrieval=retrieval,
            events=events,
            items=self.items,
            pending_history=self.pending_history,
            result_cache=result_cache,
            retrieval_timeout_s=retrieval_timeout_s,
        )

    async def close(self) -> None:
        """Finish storing answers, then close pools."""
        if self.cache_writes:
            await asyncio.gather(*self.cache_writes, return_exceptions=True)
        await self.retrieval.close()
        await self.ranking.close()
        if self.redis is not None:
            await self.redis.close()

    async def recommend_body(
        self, req: RecommendationRequest, request_id: str | None, *, use_cached: bool = True
    ) -> tuple[bytes, CacheStatus]:
        """:meth:`recommend` as a JSON body, served from the result cache when it can be.

        Args:
            req: The request.
            request_id: Added to the body.
            use_cached: False computes the answer even when one is cached (it is still
                stored): ``Cache-Control: no-cache``.

        Returns:
            The body, and ``hit``, ``miss`` (computed, cached unless degraded) or ``off``
            (no cache configured, no bundle version known, or Redis unavailable).
        """
        version = self.popular.version if self.popular is not None else None
        slot = None
        if self.result_cache is not None and version is not None:
            with stage("cache"):
                cached, slot = await self.result_cache.get(req, version, read_body=use_cached)
            if cached is not None and use_cached:
                return with_request_id(cached, request_id), "hit"
        if self.max_in_flight and self.in_flight >= self.max_in_flight:
            # Overloaded: answer now rather than queue behind work that is already late.
            exclude = _excluded(req) | await self._hidden(req.user_id)
            rec = self._popular_answer(req, exclude, request_id, reason="overload")
        else:
            self.in_flight += 1
            try:
                rec = await self.recommend(req, request_id)
            finally:
                self.in_flight -= 1
        body = rec.model_dump_json(exclude={"request_id"}).encode()
        if slot is None or self.result_cache is None:
            return with_request_id(body, request_id), "off"
        if not rec.degraded and rec.model_version == version:
            # Stored while the answer goes out: the write is off the request's critical
            # path, and its stamp (read before computing) keeps a late write from being
            # served after an event or a new item.
            write = asyncio.create_task(self.result_cache.put(slot, body))
            self.cache_writes.add(write)
            write.add_done_callback(self.cache_writes.discard)
        return with_request_id(body, request_id), "miss"

    async def catalogue_changed(self) -> None:
        """An item was added: cached answers are recomputed so it can appear in them."""
        if self.result_cache is not None:
            await self.result_cache.catalogue_changed()

    async def recommend(
        self, req: RecommendationRequest, request_id: str | None
    ) -> Recommendations:
        """Retrieval -> ranking -> top k, degrading when a dependency is down."""
        start = time.monotonic()
        degraded: list[Degraded] = []
        named = [*req.recent_item_ids]
        named += [r.item_id for r in req.ratings if r.rating >= POSITIVE_RATING]
        # Retrieval keeps the last occurrence of each id; the most recent MAX_IDS are kept.
        history = dedupe_keep_last(named)[-MAX_IDS:]
        exclude = _excluded(req)
        creq = CandidatesRequest(
            user_id=req.user_id,
            history=history,
            user_features=req.user_features,
            k=max(self.candidates_wanted(), req.k),
            exclude_item_ids=sorted(exclude),
            exclude_seen=req.exclude_seen,
            genres=req.genres,
            filter=req.filter,
            check_item_ids=sorted(
                (set(req.recent_item_ids) | {r.item_id for r in req.ratings}) - set(history)
            ),
        )
        try:
            cands = await self.retrieval.candidates(
                creq, timeout_s=self._budget(start, self.retrieval_timeout_s), request_id=request_id
            )
        except DependencyUnavailableError:
            with stage("fallback"):
                exclude |= await self._hidden(req.user_id)
                return self._popular_answer(req, exclude, request_id)
        if cands.cache == "bypass":
            degraded.append("cache")
        cols = cands.columns
        version = cands.model_version
        # (position in cols, score) best first: retrieval's order unless ranking answers.
        order: list[tuple[int, float]] | None = None
        if len(cols):
            try:
                ranked = await self.ranking.rank(
                    RankRequest(
                        user_id=req.user_id,
                        history=cands.history[-1000:],
                        user_features=req.user_features,
                        columns=cols,
                        k=req.k,  # only the top k travel back
                    ),
                    timeout_s=self._budget(start, self.ranking_timeout_s),
                    request_id=request_id,
                )
                at = {iid: j for j, iid in enumerate(cols.item_ids)}
                order = [(at[r.item_id], r.score) for r in ranked.items if r.item_id in at]
            except DependencyUnavailableError:
                degraded.append("ranking")
        if order is None:
            order = list(enumerate(cols.scores[: req.k]))
        items = [_scored(cols, j, score, i + 1) for i, (j, score) in enumerate(order[: req.k])]
        if req.explain and items:
            await self._explain(items, cands.history, start, request_id)
        return Recommendations(
            user_id=req.user_id,
            items=items,
            model_version=version,
            degraded=degraded,
            request_id=request_id,
            **fewer_than_k(len(items), req.k, cands.matched),
        )

    async def _hidden(self, user_id: str | None) -> set[str]:
        """Items the user hid or disliked: in the training data and live (best effort: with
        Redis down only the bundle's are known)."""
        if user_id is None:
            return set()
        hidden = set(self.popular.hidden.get(user_id, ())) if self.popular is not None else set()
        if self.user_state is not None:
            live, _ = await self.user_state.hidden(user_id)
            hidden |= live
        return hidden

    def candidates_wanted(self) -> int:
        """HYBRIDREC_N_CANDIDATES, else the bundle's trained count, else 200."""
        if self.n_candidates is not None:
            return self.n_candidates
        trained = self.popular.max_candidates if self.popular is not None else None
        return trained or DEFAULT_CANDIDATES

    def _budget(self, start: float, timeout_s: float) -> float:
        remaining = self.deadline_s - (time.monotonic() - start)
        if remaining <= 0.01:
            raise DependencyUnavailableError("the request deadline passed", dependency="deadline")
        return min(timeout_s, remaining)

    def _popular_answer(
        self,
        req: RecommendationRequest,
        exclude: set[str],
        request_id: str | None,
        *,
        reason: Degraded = "retrieval",
    ) -> Recommendations:
        if self.popular is None:
            if reason == "overload":
                raise DependencyUnavailableError(
                    f"the gateway is computing {self.in_flight} recommendations, its limit "
                    "(HYBRIDREC_MAX_IN_FLIGHT), and has no popular fallback loaded; retry "
                    "shortly, or add gateway replicas",
                    dependency="gateway",
                )
            raise DependencyUnavailableError(
                "retrieval is down and no bundle is loaded for the popular fallback; "
                "check HYBRIDREC_ARTIFACTS and the retrieval service",
                dependency="retrieval",
            )
        items = self.popular.top(req.k, exclude=exclude, genres=req.genres, flt=req.filter)
        return Recommendations(
            user_id=req.user_id,
            items=items,
            model_version=self.popular.version,
            degraded=[reason],
            request_id=request_id,
            **fewer_than_k(len(items), req.k, None),
        )

    async def _explain(
        self, items: list[ScoredItem], history: list[str], start: float, request_id: str | None
    ) -> None:
        if not history:
            for it in items:
                it.reasons = ["popular with viewers like you"]
            return
        try:
            found = await self.retrieval.explain(
                ExplainRequest(history=history[-200:], item_ids=[it.item_id for it in items]),
                timeout_s=self._budget(start, self.retrieval_timeout_s),
                request_id=request_id,
            )
        except DependencyUnavailableError:
            return
        reasons = {e.item_id: list(e.reasons) for e in found.items}
        for it in items:
            it.reasons = reasons.get(it.item_id, [])


def _scored(cols: CandidateColumns, j: int, score: float, rank: int) -> ScoredItem:
    return ScoredItem(
        item_id=cols.item_ids[j],
        title=cols.titles[j] if cols.titles else "",
        year=cols.years[j] if cols.years else None,
        genres=cols.genres[j] if cols.genres else [],
        score=score,
        rank=rank,
    )
