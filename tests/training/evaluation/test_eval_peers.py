"""ALS, RP3beta, ContentPopularity and the oracle: tuned on validation, ahead where they
should be."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.data.dataset import Dataset
from training.evaluation.base import EvalData
from training.evaluation.baselines import Popularity, RandomRecommender
from training.evaluation.harness import evaluate
from training.evaluation.peers import ALS, ContentPopularity, PopularityOracle
from training.models.rp3beta import RP3betaRecommender
from training.splits import make_split


def test_als_is_tuned_on_validation_and_beats_popularity(synth_data: EvalData) -> None:
    als = ALS(factors=(4, 8), regularization=(0.1, 1.0), alpha=(1.0, 5.0), iterations=8)
    als.fit(synth_data)
    search = als.hyperparameters["search"]
    assert search["chosen"] == {k: als.hyperparameters[k]
                                for k in ("factors", "regularization", "alpha")}
    assert len(search["tried"]) >= 8
    best = max(search["tried"], key=lambda p: p["valid_ndcg@10"])
    assert best["valid_ndcg@10"] == search["valid_ndcg@10_chosen"]
    pop = Popularity()
    pop.fit(synth_data)
    res = {m.name: evaluate(m, synth_data, ks=(10,), progress=False)["ndcg@10"]
           for m in (als, pop)}
    assert res["ALS"] > res["Popularity"] + 0.05, res


def test_tuned_on_validation_with_the_grid_widened_where_an_end_wins(
    synth_data: EvalData,
) -> None:
    rec = RP3betaRecommender(alpha=None, beta=None)
    rec.fit(synth_data)
    search = rec.hyperparameters["search"]
    assert search["chosen"] == {"alpha": rec.alpha, "beta": rec.beta}
    tried = search["tried"]
    assert len(tried) >= 9
    best = max(tried, key=lambda p: p["valid_ndcg@10"])
    assert best["valid_ndcg@10"] == search["valid_ndcg@10_chosen"]
    # the chosen point is not at an end of what was tried, unless the bounds stopped it
    for axis, (low, high) in {"alpha": (0.25, 2.0), "beta": (0.0, 1.4)}.items():
        values = sorted({p[axis] for p in tried})
        chosen = search["chosen"][axis]
        assert chosen not in (values[0], values[-1]) or chosen in (low, high) or (
            axis in search["axes_still_at_an_end"])
    pop = Popularity()
    pop.fit(synth_data)
    got = {m.name: evaluate(m, synth_data, ks=(10,), progress=False)["ndcg@10"]
           for m in (rec, pop)}  # fmt: skip
    assert got["RP3beta"] > got["Popularity"] + 0.05, got


def _popular_genre_dataset(seed: int = 0) -> Dataset:
    """Items of genre A are rated by many users, genre B by few: popularity follows genre."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 80, 60
    genre = ["A" if i % 2 == 0 else "B" for i in range(n_items)]
    rows = []
    for u in range(n_users):
        for i in range(n_items):
            p = 0.6 if genre[i] == "A" else 0.12
            if rng.random() < p:
                rows.append((u + 1, i + 1, 4.0, int(rng.integers(0, 10_000))))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).astype(
        {"rating": "float32"})
    items = pd.DataFrame({"item_id": np.arange(1, n_items + 1), "title": [""] * n_items,
                          "year": pd.array([2000] * n_items, dtype="Int64"),
                          "genres": [[g] for g in genre], "tags": [[] for _ in genre],
                          "overview": [None] * n_items})
    return Dataset(name="pop-genre", interactions=inter, items=items,
                   users=pd.DataFrame({"user_id": np.arange(1, n_users + 1)}),
                   source_sha256="0" * 64, source_path="memory")


def test_content_popularity_ranks_cold_items_by_predicted_popularity() -> None:
    ds = _popular_genre_dataset()
    data = EvalData.from_split(ds, make_split(ds, "cold-items", seed=1, k_core=2,
                                              cold_frac=0.3))
    assert data.candidate_items is not None and len(data.candidate_items) >= 4
    cp = ContentPopularity(ridge=(0.1, 1.0, 10.0))
    cp.fit(data)
    scores = cp.score(np.arange(3))[:, data.candidate_items]
    genres = [data.items["genres"][i][0] for i in data.candidate_items]
    a = np.array([g == "A" for g in genres])
    assert a.any() and (~a).any()
    assert (scores[:, a].min(axis=1) > scores[:, ~a].max(axis=1)).all()
    assert "search" in cp.hyperparameters and cp.hyperparameters["content_features"] is False
    rnd = RandomRecommender(seed=3)
    rnd.fit(data)
    ours = evaluate(cp, data, ks=(10,), progress=False)["ndcg@10"]
    assert ours > evaluate(rnd, data, ks=(10,), progress=False)["ndcg@10"]


def test_oracle_reads_test_and_is_marked(synth_ds: Dataset) -> None:
    data = EvalData.from_split(synth_ds, make_split(synth_ds, "cold-items", seed=2, k_core=5))
    oracle = PopularityOracle()
    oracle.fit(data)
    assert oracle.name.startswith("Oracle") and "reads test" in oracle.name
    counts = np.asarray(data.test.sum(axis=0)).ravel()
    assert np.array_equal(oracle.score(np.array([0]))[0], counts)
