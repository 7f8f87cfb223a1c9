"""The ranking engine on the bookshop bundle: the ranker reads item and user attributes, and
a request's ``user_features`` (any user attribute by name) change an anonymous user's scores
and override a known user's stored ones (no HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.ranking.engine import RankingEngine
from services.ranking.settings import RankingSettings
from shared.contracts import bundle_layout as L
from shared.contracts.internal_v1 import CandidateColumns, RankRequest


@pytest.fixture(scope="module")
def engine(bookshop_bundle: tuple[Path, Path]) -> RankingEngine:
    return RankingEngine.load(RankingSettings(artifacts=str(bookshop_bundle[1])))


def _request(engine: RankingEngine, user_id: str | None,
             features: dict[str, object] | None) -> RankRequest:
    ids = [str(i) for i in engine.catalogue.item_ids[10:50]]
    n, names = len(ids), list(engine.source_names)
    cols = CandidateColumns(
        item_ids=ids, scores=[1.0 - j / n for j in range(n)], sources=[names[0]] * n,
        source_scores={s: [1.0 - j / n for j in range(n)] for s in names},
        source_ranks={s: list(range(1, n + 1)) for s in names})
    hist = [str(i) for i in engine.catalogue.item_ids[:3]]
    return RankRequest.model_validate({
        "user_id": user_id, "history": hist, "columns": cols.model_dump(),
        **({"user_features": features} if features else {})})


def _scores(engine: RankingEngine, req: RankRequest) -> dict[str, float]:
    return {it.item_id: it.score for it in engine.rank(req).items}


def test_user_attributes_change_the_scores(engine: RankingEngine) -> None:
    assert engine.tables.attributes is not None
    assert engine.tables.attributes.user.names == ["country", "age"]
    anon = _scores(engine, _request(engine, None, None))
    fr = _scores(engine, _request(engine, None, {"country": "FR", "age": 25}))
    de = _scores(engine, _request(engine, None, {"country": "DE", "age": 25}))
    ignored = _scores(engine, _request(engine, None, {"shoe_size": 44}))
    assert set(anon) == set(fr) == set(de)
    assert anon != fr and fr != de
    assert ignored == anon
    users = engine.bundle.load_parquet(L.USERS)
    known = str(users["user_id"].iloc[0])
    stored = _scores(engine, _request(engine, known, None))
    over = _scores(engine, _request(engine, known, {"country": "XX", "age": 99}))
    assert stored != over and stored != anon
