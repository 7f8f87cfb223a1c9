"""Two-stage recommender on tiny planted data: no seen items, folds, export round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from shared.model.ranker_features import RankerFeatureTables
from shared.model.ranker_serving import RankerScorer
from training.evaluation.base import EvalData
from training.evaluation.baselines import Popularity
from training.models.ranker import RankerConfig
from training.models.ranking_sources import (
    ContentRecommender,
    SparseEASERecommender,
)
from training.models.two_stage import (
    RetrievalOnlyRecommender,
    SourceSpec,
    TwoStageConfig,
    TwoStageRecommender,
)

N_USERS, N_ITEMS = 36, 30


def _data(split: str = "temporal") -> tuple[EvalData, np.ndarray]:
    """Two taste clusters (items 0-14, 15-29); per user 10 items in time order."""
    rng = np.random.default_rng(7)
    rows = []
    for u in range(N_USERS):
        lo = 0 if u % 2 == 0 else 15
        items = lo + rng.choice(15, size=10, replace=False)
        for t, i in enumerate(items):
            rows.append((u, int(i), 1000 * u + t))
    df = pd.DataFrame(rows, columns=["user_idx", "item_idx", "timestamp"])
    pos = df.groupby("user_idx").cumcount()
    part = np.where(pos < 8, 0, np.where(pos < 9, 1, 2))
    shape = (N_USERS, N_ITEMS)

    def csr(mask: np.ndarray) -> sp.csr_matrix:
        s = df[mask]
        return sp.csr_matrix(
            (np.ones(len(s), np.float32), (s["user_idx"], s["item_idx"])), shape=shape
        )

    train = (
        df[part == 0]
        .reset_index(drop=True)
        .assign(
            user_id=lambda d: d["user_idx"] + 1, item_id=lambda d: d["item_idx"] + 100, rating=4.0
        )
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(N_ITEMS) + 100,
            "title": [f"m{i}" for i in range(N_ITEMS)],
            "year": pd.array([1990 + i for i in range(N_ITEMS)], dtype="Int64"),
            "genres": [["A"] if i < 15 else ["B"] for i in range(N_ITEMS)],
            "tags": [[] for _ in range(N_ITEMS)],
            "overview": [None] * N_ITEMS,
        }
    )
    data = EvalData(
        user_ids=np.arange(N_USERS, dtype=np.int64) + 1,
        item_ids=np.arange(N_ITEMS, dtype=np.int64) + 100,
        train=csr(part == 0),
        valid=csr(part == 1),
        test=csr(part == 2),
        train_interactions=train,
        items=items,
        users=pd.DataFrame({"user_id": np.arange(N_USERS) + 1}),
        candidate_items=None,
        split=split,
        seed=42,
        dataset_name="planted",
    )
    content = rng.normal(size=(N_ITEMS, 8)).astype(np.float32)
    content[:15, 0] += 3.0
    content[15:, 1] += 3.0
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    return data, content


def _model(content: np.ndarray, **cfg: object) -> TwoStageRecommender:
    sources = [
        SourceSpec("ease", lambda: SparseEASERecommender(lam=10.0, k=20)),
        SourceSpec("content", lambda: ContentRecommender(content, history_window=5)),
        SourceSpec("popularity", Popularity),
    ]
    opts: dict[str, Any] = {
        "id_dim": 4,
        "content_dim": 4,
        "hidden_units": (8,),
        "epochs": 3,
        "patience": 3,
        "lists_per_batch": 8,
        "ensemble": 2,
        "progress": False,
        **cfg,
    }
    config = TwoStageConfig(
        depth=10,
        max_candidates=14,
        min_candidates=12,
        history_window=5,
        ranker=RankerConfig(**opts),
    )
    return TwoStageRecommender(sources, content, config)


@pytest.fixture(scope="module")
def fitted() -> tuple[TwoStageRecommender, EvalData]:
    data, content = _data()
    model = _model(content, loss="auto", use_ids=True)
    model.fit(data)
    return model, data


def test_never_recommends_train_items(fitted: tuple[TwoStageRecommender, EvalData]) -> None:
    model, data = fitted
    users = np.arange(N_USERS)
    for scorer in (model, model.retrieval_only()):
        scores = scorer.score(users)
        assert scores.shape == (N_USERS, N_ITEMS) and scores.dtype == np.float32
        assert not np.isnan(scores).any()
        top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        seen = data.train.toarray() > 0
        assert not np.take_along_axis(seen, top, axis=1).any()
        assert np.isneginf(scores[seen]).all()


def test_candidates_rank_above_the_rest(fitted: tuple[TwoStageRecommender, EvalData]) -> None:
    model, data = fitted
    users = np.array([0, 5, 11])
    scores = model.score(users)
    for b, cs in enumerate(model.candidates(users)):
        assert 0 < len(cs) <= 14
        others = np.setdiff1d(np.arange(N_ITEMS), cs.item_idx)
        finite = others[np.isfinite(scores[b, others])]
        assert scores[b, cs.item_idx].min() > scores[b, finite].max(initial=-1.0)
        assert not set(cs.item_idx.tolist()) & set(data.train[users[b]].indices.tolist())
    h = model.hyperparameters
    assert h["holdout_used"] == "temporal" and h["loss_used"] in ("listwise", "bce")
    assert h["folds_used"] == 1
    assert set(h["valid_ndcg@10_by_loss"]) == {"listwise", "bce"}


def test_retrieval_only_shares_the_fitted_pipeline(
    fitted: tuple[TwoStageRecommender, EvalData],
) -> None:
    model, data = fitted
    ro = RetrievalOnlyRecommender(model)
    before = model.model
    ro.fit(data)  # already fitted on this data: no refit
    assert model.model is before
    scores = ro.score(np.array([3]))
    cs = model.candidates(np.array([3]))[0]
    order = cs.item_idx[np.argsort(-scores[0, cs.item_idx], kind="stable")]
    np.testing.assert_array_equal(order, cs.item_idx)  # fused order


def test_export_and_serving_reproduce_the_ranking(
    fitted: tuple[TwoStageRecommender, EvalData], tmp_path: Path
) -> None:
    model, _ = fitted
    paths = model.export(tmp_path)
    meta = json.loads(Path(paths["config"]).read_text())
    assert meta["merge"] == {
        "source_names": ["ease", "content", "popularity"],
        "depth": 10,
        "fill_sources": ["popularity"],
        "min_candidates": 12,
        "max_candidates": 14,
        "missing_rank": 11,
    }
    scorer = RankerScorer(paths["ranker"], RankerFeatureTables.load(tmp_path))
    users = np.array([2, 9])
    scores = model.score(users)
    for b, (u, cs) in enumerate(zip(users, model.candidates(users), strict=True)):
        items, _ = scorer.rank(int(u), model._hist[u], cs)
        expected = cs.item_idx[np.argsort(-scores[b, cs.item_idx], kind="stable")]
        np.testing.assert_array_equal(items, expected)


def test_sparse_ease_table_serves_like_item_knn(tmp_path: Path) -> None:
    from shared.model.item_knn import score_from_history

    data, _ = _data()
    rec = SparseEASERecommender(lam=5.0, k=10)
    rec.fit(data)
    paths = rec.save(tmp_path)
    nb = np.load(paths["neighbors"], allow_pickle=False)
    w = np.load(paths["weights"], allow_pickle=False)
    assert nb.shape == (N_ITEMS, 10) and (w >= 0).all()
    full = rec.score(np.array([4]))[0]
    hist = data.train[4].indices
    idx, sc = score_from_history(hist, nb, w, k=5)
    np.testing.assert_allclose(sc, full[idx], rtol=1e-5)
    unseen = np.setdiff1d(np.arange(N_ITEMS), hist)
    assert sc[0] == pytest.approx(full[unseen].max(), rel=1e-5)


def test_default_sources_order_and_selection() -> None:
    from training.models.ranking_sources import default_sources

    _, content = _data()
    names = [s.name for s in default_sources(content)]
    assert names == ["two_tower", "ease", "item_knn", "content", "popularity"]
    assert [s.name for s in default_sources(content, two_tower=False)] == names[1:]
    specs = default_sources(content, names=["content", "ease"])
    assert [s.name for s in specs] == ["content", "ease"]
    assert isinstance(specs[0].factory(), ContentRecommender)


def test_random_split_pools_five_random_folds() -> None:
    data, content = _data(split="random")
    model = _model(content, loss="listwise", ensemble=1, epochs=1)
    model.fit(data)
    h = model.hyperparameters
    assert h["holdout_used"] == "random" and h["folds_used"] == 5
    assert h["train_lists"] == 5 * N_USERS  # every user has 2 inner labels in each fold
    assert not np.isnan(model.score(np.arange(4))).any()
