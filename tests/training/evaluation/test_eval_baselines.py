"""Baselines: closed forms against direct computation, tuning, and quality on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from shared.contracts.errors import ConfigError
from training.data.dataset import Dataset
from training.evaluation.base import EvalData
from training.evaluation.baselines import (
    EASE,
    GenrePopularity,
    ItemKNN,
    Popularity,
    RandomRecommender,
)
from training.evaluation.harness import evaluate
from training.splits import make_split


def _tiny_data(train: np.ndarray, genres: list[list[str]] | None = None) -> EvalData:
    """EvalData around a dense binary train matrix (valid/test empty)."""
    n_users, n_items = train.shape
    x = sp.csr_matrix(train.astype(np.float32))
    empty = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    u, i = x.nonzero()
    inter = pd.DataFrame(
        {"user_id": u, "item_id": i, "rating": 5.0, "timestamp": 0, "user_idx": u, "item_idx": i}
    )
    items = pd.DataFrame(
        {"item_id": np.arange(n_items), "genres": genres or [[] for _ in range(n_items)]}
    )
    return EvalData(
        user_ids=np.arange(n_users),
        item_ids=np.arange(n_items),
        train=x,
        valid=empty,
        test=empty,
        train_interactions=inter,
        items=items,
        users=pd.DataFrame({"user_id": np.arange(n_users)}),
        candidate_items=None,
        split="random",
        seed=0,
        dataset_name="tiny",
    )


TRAIN = np.array(
    [
        [1, 1, 0, 0, 1],
        [1, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 0, 1, 1],
    ],
    dtype=np.float32,
)


def test_popularity_scores_are_train_counts() -> None:
    m = Popularity()
    m.fit(_tiny_data(TRAIN))
    s = m.score(np.array([0, 3]))
    assert s.shape == (2, 5) and s.dtype == np.float32
    assert s[0].tolist() == TRAIN.sum(axis=0).tolist() == s[1].tolist()


def test_ease_matches_the_closed_form() -> None:
    lam = 2.0
    m = EASE(lam=lam)
    m.fit(_tiny_data(TRAIN))
    p = np.linalg.inv(TRAIN.T.astype(np.float64) @ TRAIN + lam * np.eye(5))
    b = np.eye(5) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    expect = TRAIN @ b
    got = m.score(np.arange(4))
    assert np.allclose(got, expect, atol=1e-5)
    assert m.hyperparameters == {"lambda": 2.0}


def test_ease_refuses_large_catalogues_unless_allowed() -> None:
    data = _tiny_data(TRAIN)
    with pytest.raises(ConfigError, match=r"O\(n_items\^2\) memory"):
        EASE(lam=1.0, max_items=4).fit(data)
    m = EASE(lam=1.0, max_items=4, allow_large=True)
    m.fit(data)
    assert m.score(np.array([0])).shape == (1, 5)


def test_itemknn_cosine_and_neighbour_cut() -> None:
    m = ItemKNN(k=1)
    m.fit(_tiny_data(TRAIN))
    x = TRAIN.astype(np.float64)
    norms = np.sqrt(x.sum(axis=0))
    sim = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    # With k=1 each item i keeps only its single most similar j (column i of W).
    w = m._w.toarray()
    assert (np.count_nonzero(w, axis=0) <= 1).all()
    for i in range(5):
        j = int(np.argmax(w[:, i]))
        assert w[j, i] == pytest.approx(sim[:, i].max(), abs=1e-6)
        assert sim[j, i] == pytest.approx(sim[:, i].max(), abs=1e-6)
    full = ItemKNN(k=4)
    full.fit(_tiny_data(TRAIN))
    assert np.allclose(full.score(np.arange(4)), x @ sim, atol=1e-5)


def test_genre_popularity_hand_case() -> None:
    # User 0 trained on two Action items and one Comedy item.
    train = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=np.float32)
    genres = [["Action"], ["Action"], ["Comedy"], ["Action"], ["Comedy"], ["Action", "Comedy"]]
    m = GenrePopularity()
    m.fit(_tiny_data(train, genres))
    s = m.score(np.array([0]))[0]
    assert s[3] == pytest.approx(2.0)  # unseen item, no popularity
    assert s[4] == pytest.approx(1.0)
    assert s[5] == pytest.approx(3.0)
    # Item 0 (Action, 2 train ratings) beats item 1 (Action, 1): popularity breaks ties.
    assert 2.0 < s[1] < s[0] < 3.0


def test_random_is_seeded_and_batch_independent() -> None:
    data = _tiny_data(np.ones((6, 50), dtype=np.float32))
    a, b, c = RandomRecommender(seed=1), RandomRecommender(seed=1), RandomRecommender(seed=2)
    for m in (a, b, c):
        m.fit(data)
    full = a.score(np.arange(6))
    assert full.shape == (6, 50) and full.dtype == np.float32
    assert ((full >= 0) & (full < 1)).all()
    assert np.array_equal(full[[4, 2]], b.score(np.array([4, 2])))
    assert not np.array_equal(full, c.score(np.arange(6)))
    assert len(np.unique(full)) > 290


def test_tuning_picks_the_best_validation_value(synth_ds: Dataset) -> None:
    data = EvalData.from_split(synth_ds, make_split(synth_ds, "random", k_core=5))
    knn = ItemKNN(k_grid=(2, 10, 40), shrink_grid=(0.0, 5.0))
    knn.fit(data)
    tried = knn.hyperparameters["search"]["tried"]
    assert {(2, 0.0), (10, 0.0), (40, 0.0), (2, 5.0), (10, 5.0), (40, 5.0)} <= {
        (p["k"], p["shrink"]) for p in tried}
    best = max(tried, key=lambda p: p["valid_ndcg@10"])
    assert (knn.hyperparameters["k"], knn.hyperparameters["shrink"]) == (best["k"], best["shrink"])
    ks = sorted({p["k"] for p in tried})
    # An end pick was widened: k is interior or at its natural bound (n_items - 1).
    assert ks[0] < knn.hyperparameters["k"] < ks[-1] or knn.hyperparameters["k"] == (
        data.n_items - 1)
    direct = ItemKNN(k=knn.hyperparameters["k"], shrink=knn.hyperparameters["shrink"])
    direct.fit(data)
    assert np.allclose(direct.score(np.arange(5)), knn.score(np.arange(5)))
    ease = EASE(lambdas=(1.0, 30.0, 1000.0))
    ease.fit(data)
    res = ease.hyperparameters["search"]["tried"]
    assert ease.hyperparameters["lambda"] == max(res, key=lambda p: p["valid_ndcg@10"])["lambda"]
    lams = sorted(p["lambda"] for p in res)
    assert lams[0] < ease.hyperparameters["lambda"] < lams[-1]


def test_ease_and_itemknn_beat_popularity_on_ml_latest_small(real_random: EvalData) -> None:
    data = real_random
    scores = {}
    for m in (Popularity(), ItemKNN(k=50), EASE(lam=200.0)):
        m.fit(data)
        scores[m.name] = evaluate(m, data, ks=(10,), progress=False)["ndcg@10"]
    assert scores["EASE"] > scores["Popularity"] + 0.05
    assert scores["ItemKNN"] > scores["Popularity"] + 0.05
    assert 0.05 < scores["Popularity"] < 0.2


def test_genre_popularity_beats_random_on_cold_items(real_ds: Dataset) -> None:
    data = EvalData.from_split(real_ds, make_split(real_ds, "cold-items", seed=42))
    res = {}
    for m in (GenrePopularity(), RandomRecommender(seed=42)):
        m.fit(data)
        res[m.name] = evaluate(m, data, ks=(10,), progress=False)["ndcg@10"]
    assert res["GenrePopularity"] > res["Random"]
