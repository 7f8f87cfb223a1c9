"""GatewayCore's own rules that need no running dependency: how many candidates it asks for."""

from __future__ import annotations

import json
from pathlib import Path

from services.gateway.core import DEFAULT_CANDIDATES, GatewayCore, PopularFallback
from services.gateway.reload import load_popular
from shared.clients import RankingClient, RetrievalClient
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
