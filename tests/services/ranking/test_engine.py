"""The ranking engine on a real bundle: order, scores, fresh ids, k, and agreement with the
ranker model itself (no HTTP)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.ranking.engine import RankingEngine
from services.ranking.settings import RankingSettings
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from shared.contracts.internal_v1 import CandidateColumns, RankRequest


@pytest.fixture(scope="module")
def engine(small_bundle: Path) -> RankingEngine:
    return RankingEngine.load(RankingSettings(artifacts=str(small_bundle)))


@pytest.fixture(scope="module")
def bundle_items(small_bundle: Path) -> pd.DataFrame:
    return load_bundle(small_bundle, verify=False).load_parquet(L.ITEMS)


@pytest.fixture(scope="module")
def bundle_users(small_bundle: Path) -> pd.DataFrame:
    return load_bundle(small_bundle, verify=False).load_parquet(L.USERS)


def _columns(engine: RankingEngine, ids: list[int]) -> CandidateColumns:
    """Candidates every source proposed, in the given order (rank = position)."""
    n = len(ids)
    names = list(engine.source_names)
    return CandidateColumns(
        item_ids=ids,
        scores=[1.0 - j / n for j in range(n)],
        sources=[names[0]] * n,
        source_scores={s: [1.0 - j / n for j in range(n)] for s in names},
        source_ranks={s: list(range(1, n + 1)) for s in names},
    )


def test_ranks_every_candidate_once_best_first(
    engine: RankingEngine, bundle_items: pd.DataFrame, bundle_users: pd.DataFrame
) -> None:
    ids = [str(i) for i in bundle_items.item_id.iloc[:60]]
    user = bundle_users.iloc[0]
    req = RankRequest(
        user_id=str(user.user_id),
        history=[str(i) for i in list(user.history)[-20:]],
        columns=_columns(engine, ids),
    )
    out = engine.rank(req)
    got = [it.item_id for it in out.items]
    assert sorted(got) == sorted(ids)
    scores = [it.score for it in out.items]
    assert scores == sorted(scores, reverse=True) and np.all(np.isfinite(scores))
    assert [it.rank for it in out.items] == list(range(1, len(ids) + 1))
    assert out.model_version == engine.version
    # the order is the ranker's, not retrieval's (60 candidates, in catalogue order)
    assert got != ids


def test_scores_are_the_ranker_models_own(
    engine: RankingEngine, bundle_items: pd.DataFrame, bundle_users: pd.DataFrame
) -> None:
    """The service's scores equal the exported Keras model's on the same features."""
    ids = [str(i) for i in bundle_items.item_id.iloc[10:40]]
    user = bundle_users.iloc[3]
    history = [str(i) for i in list(user.history)[-20:]]
    req = RankRequest(user_id=str(user.user_id), history=history, columns=_columns(engine, ids))
    served = {it.item_id: it.score for it in engine.rank(req).items}
    pos = engine.catalogue.positions(ids)
    hist = engine.catalogue.positions(history)
    from services.ranking.engine import _Columns

    cs = engine.candidate_set(_Columns.of(req), pos)
    feats = engine.scorer.features(engine.user_position(str(user.user_id)), hist[hist >= 0], cs)
    keras_logits = np.asarray(engine.scorer.model(feats, training=False)).reshape(len(ids), -1)
    expected = keras_logits.mean(axis=1)
    got = np.asarray([served[i] for i in engine.catalogue.item_ids[cs.item_idx].tolist()])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_unknown_ids_keep_their_retrieval_position_and_k_truncates(
    engine: RankingEngine, bundle_items: pd.DataFrame
) -> None:
    ids = [str(i) for i in bundle_items.item_id.iloc[:10]]
    fresh = "fresh:not-in-the-bundle"
    with_fresh = [*ids[:3], fresh, *ids[3:]]
    out = engine.rank(RankRequest(columns=_columns(engine, with_fresh)))
    got = [it.item_id for it in out.items]
    assert got.index(fresh) == 3 and sorted(got) == sorted(with_fresh)
    top = engine.rank(RankRequest(columns=_columns(engine, with_fresh), k=4))
    assert [it.item_id for it in top.items] == got[:4]


def test_no_candidates_is_an_empty_answer(engine: RankingEngine) -> None:
    empty = CandidateColumns(item_ids=[], scores=[], sources=[])
    assert engine.rank(RankRequest(columns=empty)).items == []
