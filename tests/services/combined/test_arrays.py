"""In one process, ranking scores retrieval's own arrays (no rebuild from the columns), and
its answer is the one the columns give over HTTP, to the last bit."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from services.ranking.engine import RankingEngine
from services.ranking.settings import RankingSettings
from services.retrieval import pipeline
from services.retrieval.engine import RetrievalEngine
from services.retrieval.settings import RetrievalSettings
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from shared.contracts.internal_v1 import (
    CandidatesRequest,
    CandidatesResponse,
    RankRequest,
    RankResponse,
)
from shared.stores.fresh_items import FreshItemStore
from shared.stores.user_state import UserStateStore


@pytest.fixture(scope="module")
def engines(
    small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RetrievalEngine, RankingEngine]:
    retrieval = RetrievalEngine(
        RetrievalSettings(artifacts=str(small_bundle), redis_url=None),
        load_bundle(small_bundle),
        UserStateStore(None),
        FreshItemStore(None, tmp_path_factory.mktemp("fresh")),
    )
    return retrieval, RankingEngine.load(RankingSettings(artifacts=str(small_bundle)))


def _rank(ranking: RankingEngine, cands: CandidatesResponse, user: str | None) -> RankResponse:
    return ranking.rank(RankRequest(user_id=user, history=cands.history, columns=cands.columns))


def test_arrays_in_process_rank_exactly_as_the_columns_over_http(
    engines: tuple[RetrievalEngine, RankingEngine], small_bundle: Path
) -> None:
    retrieval, ranking = engines
    users = load_bundle(small_bundle, verify=False).load_parquet(L.USERS)
    known = [str(u) for u in users["user_id"].iloc[:6]]
    anonymous = [str(i) for i in users["history"].iat[7][-5:]]
    requests = [CandidatesRequest(user_id=u, k=200) for u in known]
    requests.append(CandidatesRequest(history=anonymous, k=200))
    for req in requests:
        cands = asyncio.run(pipeline.candidates(retrieval, req))
        assert len(cands.columns) >= 50  # a small catalogue: not every source fills 200
        assert ranking.arrays_in_process(
            RankRequest(history=cands.history, columns=cands.columns)
        ) is not None  # fmt: skip
        local = _rank(ranking, cands, req.user_id)
        # Over HTTP: the JSON the split sends, parsed as the ranking service parses it.
        wire = CandidatesResponse.model_validate_json(cands.model_dump_json())
        assert wire.columns.arrays(retrieval.version) is None
        remote = _rank(ranking, wire, req.user_id)
        assert [(i.item_id, i.score) for i in local.items] == [
            (i.item_id, i.score) for i in remote.items
        ]


def test_arrays_of_another_bundle_version_are_not_used(
    engines: tuple[RetrievalEngine, RankingEngine], small_bundle: Path
) -> None:
    """During a reload retrieval and ranking may hold different versions, whose item
    positions differ: then ranking rebuilds from the ids."""
    retrieval, ranking = engines
    users = load_bundle(small_bundle, verify=False).load_parquet(L.USERS)
    cands = asyncio.run(
        pipeline.candidates(retrieval, CandidatesRequest(user_id=str(users["user_id"].iat[0])))
    )
    cs = cands.columns.arrays(retrieval.version)
    assert cs is not None
    # Another version's positions: the same rows would name other items here.
    shifted = dataclasses.replace(cs, item_idx=(cs.item_idx + 1) % retrieval.n_items)
    cands.columns.attach_arrays("another-version", shifted)
    req = RankRequest(history=cands.history, columns=cands.columns)
    assert ranking.arrays_in_process(req) is None
    wire = CandidatesResponse.model_validate_json(cands.model_dump_json())
    rebuilt = RankRequest(history=wire.history, columns=wire.columns)
    got = [i.item_id for i in ranking.rank(req).items]
    assert got == [i.item_id for i in ranking.rank(rebuilt).items]
    assert set(got) == set(cands.columns.item_ids)
