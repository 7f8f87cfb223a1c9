"""GatewayCore's own rules that need no running dependency: how many candidates it asks for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from services.gateway.core import DEFAULT_CANDIDATES, GatewayCore, PopularFallback
from services.gateway.reload import load_popular
from shared.clients import RankingClient, RetrievalClient
from shared.errors import DependencyUnavailableError
from shared.schemas.v1 import RecommendationRequest
from shared.stores.events import EventLog


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
