"""GatewayCore's own rules without running dependencies: candidates asked for, overload, caching."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from services.gateway.core import DEFAULT_CANDIDATES, GatewayCore, PopularFallback
from services.gateway.reload import load_popular
from services.gateway.result_cache import CacheSlot, ResultCache
from shared.contracts.errors import DependencyUnavailableError
from shared.contracts.public_v1 import RecommendationRequest, Recommendations
from shared.serving.clients import RankingClient, RetrievalClient
from shared.stores.events import EventLog
from shared.stores.redis_conn import RedisGuard


def _core(tmp_path: Path, popular: PopularFallback | None, n: int | None) -> GatewayCore:
    return GatewayCore(
        retrieval=RetrievalClient("retrieval", "http://127.0.0.1:9", timeout_s=1.0),
        ranking=RankingClient("ranking", "http://127.0.0.1:9", timeout_s=1.0),
        events=EventLog(None, tmp_path),
        redis=None,
        popular=popular,
        n_candidates=n,
        deadline_s=1.0,
        retrieval_timeout_s=1.0,
        ranking_timeout_s=1.0,
    )


def test_asks_for_as_many_candidates_as_the_ranker_was_trained_with(
    small_bundle: Path, tmp_path: Path
) -> None:
    trained = json.loads((small_bundle / "latest" / "ranker" / "two_stage.json").read_text())
    want = int(trained["config"]["max_candidates"])
    popular, _ = load_popular(str(small_bundle))
    assert popular.max_candidates == want
    assert _core(tmp_path, popular, None).candidates_wanted() == want
    assert _core(tmp_path, popular, 150).candidates_wanted() == 150  # the setting wins
    assert _core(tmp_path, None, None).candidates_wanted() == DEFAULT_CANDIDATES


def test_at_the_in_flight_limit_answers_popular_items_without_computing(
    small_bundle: Path, tmp_path: Path
) -> None:
    popular, _ = load_popular(str(small_bundle))
    top = popular.top(3, exclude=set(), genres=[])
    req = RecommendationRequest(user_id=1, k=3, exclude_item_ids=[top[0].item_id])

    core = _core(tmp_path, popular, None)
    core.max_in_flight, core.in_flight = 4, 4  # four answers being computed already
    body, status = asyncio.run(core.recommend_body(req, "r1"))
    answer = json.loads(body)
    assert answer["degraded"] == ["overload"] and status == "off"
    assert top[0].item_id not in [it["item_id"] for it in answer["items"]]  # exclusions hold
    assert [it["item_id"] for it in answer["items"]][:2] == [t.item_id for t in top[1:]]
    assert core.in_flight == 4

    core.max_in_flight = 0  # no limit: computed (retrieval is unreachable: popular fallback)
    body, _ = asyncio.run(core.recommend_body(req, "r2"))
    assert json.loads(body)["degraded"] == ["retrieval"]
    assert core.in_flight == 4  # the slot taken for the computation was given back

    bare = _core(tmp_path, None, None)
    bare.max_in_flight, bare.in_flight = 1, 1
    with pytest.raises(DependencyUnavailableError, match="HYBRIDREC_MAX_IN_FLIGHT"):
        asyncio.run(bare.recommend_body(req, "r3"))


def test_a_computed_answer_goes_out_before_it_is_stored(
    small_bundle: Path, tmp_path: Path, redis_url: str
) -> None:
    popular, _ = load_popular(str(small_bundle))
    req = RecommendationRequest(user_id=1, k=3)

    async def main() -> None:
        guard = RedisGuard(redis_url, timeout_s=2.0)
        cache = ResultCache(guard, prefix=f"hrgc-{uuid.uuid4().hex[:8]}", ttl_s=60)
        core = _core(tmp_path, popular, None)
        core.result_cache, core.redis = cache, guard
        answer = Recommendations(user_id=1, items=[], model_version=popular.version)

        async def computed(req: RecommendationRequest, request_id: str | None) -> Recommendations:
            return answer

        release = asyncio.Event()
        plain_put = cache.put

        async def held_put(slot: CacheSlot, body: bytes) -> None:
            await release.wait()
            await plain_put(slot, body)

        core.recommend = computed  # type: ignore[method-assign]
        cache.put = held_put  # type: ignore[method-assign]
        # An answer that waited for its write would time out here.
        body, status = await asyncio.wait_for(core.recommend_body(req, "r1"), 10.0)
        assert status == "miss" and json.loads(body)["request_id"] == "r1"
        assert len(core.cache_writes) == 1  # answered while the write waits
        assert (await cache.get(req, popular.version))[0] is None
        release.set()
        await asyncio.gather(*core.cache_writes)
        assert not core.cache_writes  # a finished write leaves the set
        stored, _ = await cache.get(req, popular.version)
        assert stored is not None and json.loads(stored) == json.loads(
            answer.model_dump_json(exclude={"request_id"})
        )
        again, status = await core.recommend_body(req, "r2")
        assert status == "hit" and json.loads(again)["request_id"] == "r2"
        release.clear()
        _, status = await asyncio.wait_for(
            core.recommend_body(req, "r3", use_cached=False), 10.0
        )  # computed again
        assert status == "miss" and len(core.cache_writes) == 1
        release.set()
        await core.close()  # waits for the write in flight
        assert not core.cache_writes

    asyncio.run(main())


def test_the_popular_fallback_never_shows_a_users_hidden_items(
    small_bundle: Path, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Retrieval down: the popular answer leaves out what the user hid live (Redis hidden
    set) and in the training data (the bundle's, carried by the fallback)."""
    from shared.stores.user_state import UserStateStore

    popular, _ = load_popular(str(small_bundle))
    top = [t.item_id for t in popular.top(4, exclude=set(), genres=[])]
    popular.hidden = {"u-bundle": {top[1]}}

    async def main() -> list[list[str]]:
        guard = RedisGuard(redis_url, timeout_s=2.0)
        store = UserStateStore(guard, prefix=redis_prefix)
        try:
            await store.push_recent("u-live", [top[0]], hidden=True)
            core = _core(tmp_path, popular, None)
            core.user_state = store
            out = []
            for user in ("u-live", "u-bundle", "u-other"):
                rec = await core.recommend(RecommendationRequest(user_id=user, k=3), "r")
                assert rec.degraded == ["retrieval"]
                out.append([it.item_id for it in rec.items])
            await core.close()
            return out
        finally:
            await guard.close()

    live, bundle, other = asyncio.run(main())
    assert live == top[1:4] and bundle == [top[0], *top[2:4]] and other == top[:3]
