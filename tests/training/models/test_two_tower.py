"""Two-tower retrieval model on planted data: training, export, serving runners, cold paths.

The synthetic data has four genres; every user likes one genre and only
interacts with items of it, and item content vectors cluster by genre. A
working model must therefore rank the user's genre first, give a content-only
item a vector near its genre, and turn a genre-B history into genre-B items.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from shared.contracts.errors import ConfigError, ValidationError
from shared.model.features import FeatureEncoder
from shared.model.query_serving import CandidateTowerRunner, QueryTowerRunner
from training.evaluation.base import EvalData
from training.models.retrieval_recommenders import ItemKNNRecommender, TwoTowerRecommender
from training.models.towers import TwoTowerConfig, tower_inputs
from training.models.two_tower import (
    CANDIDATE_TOWER_FILE,
    ENCODER_FILE,
    QUERY_TOWER_FILE,
)

GENRES = ["A", "B", "C", "D"]
PER_GENRE = 30
N_USERS = 120
PER_USER = 14
COLD_PER_GENRE = 3  # items of each genre nobody interacts with
DIM = 32


def _recall_at_10(scores: np.ndarray, seen: sp.csr_matrix, relevant: sp.csr_matrix) -> float:
    scores = scores.copy()
    scores[seen.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    rel = relevant.toarray() > 0
    hits = np.take_along_axis(rel, top, axis=1).sum(axis=1)
    return float(np.mean(hits / rel.sum(axis=1)))


def _planted(seed: int = 0) -> tuple[EvalData, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_items = PER_GENRE * len(GENRES)
    item_genre = np.repeat(np.arange(len(GENRES)), PER_GENRE)
    centroids = rng.normal(size=(len(GENRES), DIM))
    content = centroids[item_genre] + 0.6 * rng.normal(size=(n_items, DIM))
    content = (content / np.linalg.norm(content, axis=1, keepdims=True)).astype(np.float32)
    items = pd.DataFrame(
        {
            "item_id": np.arange(n_items, dtype=np.int64) * 10 + 1,
            "title": [f"item {i}" for i in range(n_items)],
            "year": pd.array(rng.integers(1970, 2020, n_items), dtype="Int64"),
            "genres": [[GENRES[g]] for g in item_genre],
            "tags": [[] for _ in range(n_items)],
            "overview": [None] * n_items,
        }
    )
    warm = [np.arange(g * PER_GENRE + COLD_PER_GENRE, (g + 1) * PER_GENRE) for g in range(4)]
    rows = []
    for u in range(N_USERS):
        g = u % len(GENRES)
        picked = rng.choice(warm[g], size=PER_USER, replace=False)
        for t, item in enumerate(picked):
            part = "test" if t >= PER_USER - 2 else "valid" if t == PER_USER - 3 else "train"
            rows.append((u, int(item), 1000 * u + t, part))
    df = pd.DataFrame(rows, columns=["user_idx", "item_idx", "timestamp", "part"])
    shape = (N_USERS, n_items)

    def matrix(part: str) -> sp.csr_matrix:
        sub = df[df["part"] == part]
        ones = np.ones(len(sub), dtype=np.float32)
        return sp.csr_matrix((ones, (sub["user_idx"], sub["item_idx"])), shape=shape)

    train = df[df["part"] == "train"].reset_index(drop=True)
    user_ids = np.arange(N_USERS, dtype=np.int64) + 100
    inter = pd.DataFrame(
        {
            "user_id": user_ids[train["user_idx"]],
            "item_id": items["item_id"].to_numpy()[train["item_idx"]],
            "rating": np.full(len(train), 4.0, dtype=np.float32),
            "timestamp": train["timestamp"].astype(np.int64),
            "user_idx": train["user_idx"].astype(np.int64),
            "item_idx": train["item_idx"].astype(np.int64),
        }
    )
    users = pd.DataFrame({"user_id": user_ids, "gender": ["F", "M"] * (N_USERS // 2)})
    data = EvalData(
        user_ids=user_ids,
        item_ids=items["item_id"].to_numpy(),
        train=matrix("train"),
        valid=matrix("valid"),
        test=matrix("test"),
        train_interactions=inter,
        items=items,
        users=users,
        candidate_items=None,
        split="random",
        seed=seed,
        dataset_name="planted",
    )
    return data, content, centroids, item_genre


CONFIG = TwoTowerConfig(
    output_dim=16,
    id_dim=16,
    content_dim=16,
    feature_dim=4,
    year_dim=4,
    hidden_units=(32,),
    temperature=0.1,
    epochs=12,
    batch_size=64,
    learning_rate=0.01,
    history_length=8,
    valid_max_users=60,
    seed=7,
    verbose=0,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data, content, centroids, item_genre = _planted()
    rec = TwoTowerRecommender(CONFIG, content)
    rec.fit(data)
    out = tmp_path_factory.mktemp("two_tower")
    paths = rec.export(out)
    return {
        "data": data,
        "content": content,
        "centroids": centroids,
        "genre": item_genre,
        "rec": rec,
        "dir": out,
        "paths": paths,
    }


def test_beats_random_on_held_out(trained: dict) -> None:
    data, rec = trained["data"], trained["rec"]
    users = np.arange(data.n_users)
    seen = data.train + data.valid
    model = _recall_at_10(rec.score(users), seen, data.test)
    rnd = _recall_at_10(
        np.random.default_rng(0).random((data.n_users, data.n_items)), seen, data.test
    )
    assert model > 0.3
    assert model > 2.5 * rnd
    assert rec.hyperparameters["best_epoch"] >= 1


def test_save_load_round_trip_and_runners(trained: dict) -> None:
    data, rec, out = trained["data"], trained["rec"], trained["dir"]
    encoder = FeatureEncoder.load(out / ENCODER_FILE)
    assert encoder.to_dict() == rec.encoder.to_dict()
    queries = encoder.encode_queries(
        [100, 101, None, 99999],
        [[3, 4, 5], [], [40, 41], [90]],
        [None, None, {"gender": "F"}, None],
    )
    qt = keras.saving.load_model(out / QUERY_TOWER_FILE, safe_mode=True)
    expected = np.asarray(rec.query_tower(tower_inputs(rec.query_tower, queries)))
    np.testing.assert_allclose(
        qt.predict(tower_inputs(qt, queries), verbose=0), expected, atol=1e-6
    )
    runner = QueryTowerRunner(out / QUERY_TOWER_FILE)
    assert runner.backend == "numpy"  # every layer of the tower has a numpy forward
    np.testing.assert_allclose(runner(queries), expected, atol=1e-5)
    np.testing.assert_allclose(runner(queries, "tf_function"), expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(runner(queries), axis=1), 1.0, atol=1e-5)
    assert runner(encoder.encode_queries([], [])).shape == (0, CONFIG.output_dim)
    for size in (1, 3, 7):  # any batch size runs through the single traced signature
        batch = encoder.encode_queries(None, [[1]] * size)
        assert runner(batch, "tf_function").shape == (size, CONFIG.output_dim)
        np.testing.assert_allclose(runner(batch), runner(batch, "tf_function"), atol=1e-5)
    assert runner._forward.experimental_get_tracing_count() == 1
    with pytest.raises(ValidationError, match="missing"):
        runner({"user_id": queries["user_id"]})

    items = encoder.encode_items(trained["content"])
    ct = keras.saving.load_model(out / CANDIDATE_TOWER_FILE, safe_mode=True)
    expected_items = np.asarray(rec.candidate_tower(tower_inputs(rec.candidate_tower, items)))
    np.testing.assert_allclose(
        ct.predict(tower_inputs(ct, items), verbose=0), expected_items, atol=1e-6
    )
    cand_runner = CandidateTowerRunner(out / CANDIDATE_TOWER_FILE)
    assert cand_runner.backend == "numpy"
    np.testing.assert_allclose(cand_runner(items), expected_items, atol=1e-5)
    np.testing.assert_allclose(cand_runner(items, "tf_function"), expected_items, atol=1e-6)
    stored = np.load(Path(trained["paths"]["item_vectors"]), allow_pickle=False)
    np.testing.assert_allclose(stored, rec.item_vectors, atol=1e-6)
    assert stored.shape == (data.n_items, CONFIG.output_dim)


def _genre_of_neighbours(
    vectors: np.ndarray,
    item_vectors: np.ndarray,
    genre: np.ndarray,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    sims = vectors @ item_vectors.T
    if exclude is not None:
        sims[:, exclude] = -np.inf
    top = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    return genre[top]


def test_new_item_content_only_vector_near_its_genre(trained: dict) -> None:
    rec, genre = trained["rec"], trained["genre"]
    runner = CandidateTowerRunner(trained["dir"] / CANDIDATE_TOWER_FILE)
    rng = np.random.default_rng(5)
    content = trained["centroids"] + 0.6 * rng.normal(size=trained["centroids"].shape)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    new = runner.encode_new_items(rec.encoder, content, [[g] for g in GENRES], [1999] * 4)
    assert new.shape == (4, CONFIG.output_dim)
    neighbour_genres = _genre_of_neighbours(new, rec.item_vectors, genre)
    for g in range(len(GENRES)):
        assert (neighbour_genres[g] == g).mean() >= 0.8, (g, neighbour_genres[g])
    # catalogue items nobody interacted with also use the content-only path
    cold = np.concatenate(
        [np.arange(g * PER_GENRE, g * PER_GENRE + COLD_PER_GENRE) for g in range(4)]
    )
    cold_neighbours = _genre_of_neighbours(rec.item_vectors[cold], rec.item_vectors, genre, cold)
    assert (cold_neighbours == genre[cold][:, None]).mean() >= 0.8


def test_anonymous_history_ranks_its_genre_first(trained: dict) -> None:
    rec, genre, data = trained["rec"], trained["genre"], trained["data"]
    runner = QueryTowerRunner(trained["dir"] / QUERY_TOWER_FILE)
    b = GENRES.index("B")
    history = np.flatnonzero(genre == b)[COLD_PER_GENRE : COLD_PER_GENRE + 5]
    vec = runner.encode(rec.encoder, None, [history])
    scores = (vec @ rec.item_vectors.T)[0]
    scores[history] = -np.inf
    top = np.argsort(-scores, kind="stable")[:10]
    assert genre[top[0]] == b
    assert (genre[top] == b).mean() >= 0.8
    per_genre = [scores[(genre == g) & np.isfinite(scores)].mean() for g in range(4)]
    assert int(np.argmax(per_genre)) == b
    assert data.n_items == len(rec.item_vectors)


def test_candidates_for_ranker(trained: dict) -> None:
    data, rec = trained["data"], trained["rec"]
    idx, score = rec.candidates(np.array([0, 5]), k=20)
    assert idx.shape == (2, 20) and score.shape == (2, 20)
    assert (np.diff(score, axis=1) <= 1e-6).all()
    for row, user in enumerate([0, 5]):
        assert not set(idx[row]) & set(data.train[user].indices)
    knn = ItemKNNRecommender(k=20)
    knn.fit(data)
    assert (
        _recall_at_10(knn.score(np.arange(data.n_users)), data.train + data.valid, data.test) > 0.3
    )


def test_training_is_deterministic_and_modes_resolve() -> None:
    data, content, _, _ = _planted(seed=1)
    cfg = replace(CONFIG, epochs=2, history_mode="mixed", select_epoch_on_valid=False)
    runs = []
    for _ in range(2):
        rec = TwoTowerRecommender(cfg, content)
        rec.fit(data)
        runs.append(rec)
    np.testing.assert_array_equal(runs[0].item_vectors, runs[1].item_vectors)
    np.testing.assert_array_equal(runs[0].user_vectors, runs[1].user_vectors)
    assert runs[0].hyperparameters["history_mode"] == "mixed"
    auto = TwoTowerConfig()
    assert auto.resolve_history_mode("random") == "others"
    assert auto.resolve_history_mode("cold-items") == "others"
    assert auto.resolve_history_mode("temporal") == "before"
    assert replace(auto, history_mode="before").resolve_history_mode("random") == "before"
    with pytest.raises(ConfigError):
        TwoTowerConfig(history_mode="sometimes")
    with pytest.raises(ConfigError):
        TwoTowerConfig(user_id_dropout=1.0)
    with pytest.raises(ConfigError, match="content_vectors"):
        TwoTowerRecommender(cfg, content[:-1]).fit(data)
