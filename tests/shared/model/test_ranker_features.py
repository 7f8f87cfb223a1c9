"""Ranker features: tables from interactions, per-candidate arrays, save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import ValidationError
from shared.model.candidates import CandidateSet, merge_candidates
from shared.model.ranker_features import (
    RankerFeatureTables,
    build_tables,
    candidate_features,
    concat_features,
)

SOURCES = ("item_knn", "content")


def _tables(with_users: bool = False) -> RankerFeatureTables:
    rng = np.random.default_rng(0)
    n_items = 8
    content = rng.normal(size=(n_items, 6)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    items = pd.DataFrame(
        {
            "item_id": np.arange(n_items) + 100,
            "genres": [
                ["Drama"],
                ["Comedy"],
                ["Drama", "Comedy"],
                [],
                ["Action"],
                ["Drama"],
                ["(no genres listed)"],
                ["Action", "Drama"],
            ],
            "year": pd.array([1990, 2000, None, 2010, 1995, 2001, 1980, 2015], dtype="Int64"),
        }
    )
    users = pd.DataFrame({"user_id": [1, 2, 3]})
    if with_users:
        users["gender"] = ["F", "M", None]
        users["age"] = pd.array([25, 35, 25], dtype="Int64")
    inter = pd.DataFrame(
        {
            "user_idx": [0, 0, 1, 1, 2, 2, 2],
            "item_idx": [0, 1, 0, 2, 0, 4, 5],
            "timestamp": [1, 2, 3, 4, 5, 6, 7],
        }
    )
    return build_tables(items, users, inter, content, SOURCES, history_window=2)


def _cands() -> CandidateSet:
    return merge_candidates(
        {
            "item_knn": (np.array([3, 4, 6]), np.array([2.0, 1.0, 0.5])),
            "content": (np.array([6, 7]), np.array([0.9, 0.3])),
        },
        SOURCES,
        8,
        fill_sources=(),
        missing_rank=4,
    )


def test_tables_hold_counts_genres_and_years() -> None:
    t = _tables()
    np.testing.assert_array_equal(t.item_count, [3, 1, 1, 0, 1, 1, 0, 0])
    assert t.genre_names == ["Action", "Comedy", "Drama"]
    np.testing.assert_array_equal(t.item_genres[2], [0, 1, 1])
    np.testing.assert_array_equal(t.item_genres[6], [0, 0, 0])
    assert np.isnan(t.item_year[2]) and t.item_year[0] == 1990
    assert t.user_features.shape == (3, 0)
    assert "user_features" not in t.input_shapes()


def test_candidate_features_shapes_and_values() -> None:
    t = _tables()
    cs = _cands()
    hist = np.array([0, 1, 2])  # oldest first; window 2 -> items 1, 2
    f = candidate_features(t, 1, hist, cs)
    m = len(cs)
    assert f["user_idx"].tolist() == [1] * m
    np.testing.assert_array_equal(f["item_idx"], cs.item_idx)
    assert f["content"].shape == (m, 6) and f["genres"].shape == (m, 3)
    names = t.dense_names()
    assert f["dense"].shape == (m, len(names)) and f["dense"].dtype == np.float32
    col = {n: j for j, n in enumerate(names)}
    sims = t.item_content[cs.item_idx] @ t.item_content[[1, 2]].T
    np.testing.assert_allclose(f["dense"][:, col["content_max"]], sims.max(axis=1), atol=1e-6)
    np.testing.assert_allclose(f["dense"][:, col["content_last"]], sims[:, 1], atol=1e-6)
    row6 = cs.item_idx.tolist().index(6)
    assert f["dense"][row6, col["n_sources"]] == 2
    np.testing.assert_allclose(f["dense"][row6, col["item_knn_rel"]], 0.25)  # 0.5 / 2.0
    np.testing.assert_allclose(f["dense"][row6, col["content_logrank"]], 0.0)  # rank 1
    row3 = cs.item_idx.tolist().index(3)
    np.testing.assert_allclose(f["dense"][row3, col["content_logrank"]], np.log(4.0))
    assert f["dense"][row3, col["content_found"]] == 0.0
    assert f["dense"][:, col["log_history"]].tolist() == pytest.approx([np.log(4.0)] * m)


def test_empty_history_and_user_features() -> None:
    t = _tables(with_users=True)
    # gender F / M / <missing> and age 25 / 35, one-hot.
    assert t.user_feature_names == ["gender=<missing>", "gender=F", "gender=M", "age=25", "age=35"]
    np.testing.assert_array_equal(t.user_features[2], [1, 0, 0, 1, 0])
    f = candidate_features(t, 0, np.zeros(0, dtype=np.int64), _cands())
    assert np.isfinite(f["dense"]).all()
    np.testing.assert_array_equal(f["user_features"], np.repeat(t.user_features[[0]], 4, 0))
    unknown = candidate_features(t, -1, np.array([0]), _cands())
    assert not unknown["user_features"].any() and (unknown["user_idx"] == 0).all()
    both = concat_features([f, f])
    assert both["dense"].shape[0] == 2 * len(f["dense"])


def test_save_load_round_trip(tmp_path: Path) -> None:
    t = _tables(with_users=True)
    t.save(tmp_path)
    back = RankerFeatureTables.load(tmp_path)
    a = candidate_features(t, 2, np.array([0, 4, 5]), _cands())
    b = candidate_features(back, 2, np.array([0, 4, 5]), _cands())
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert back.dense_names() == t.dense_names()


def test_mismatched_sources_raise() -> None:
    t = _tables()
    other = merge_candidates({"ann": (np.array([1]), np.array([1.0]))}, ("ann",), 8)
    with pytest.raises(ValidationError, match="differ"):
        candidate_features(t, 0, np.array([0]), other)
    with pytest.raises(ValidationError, match="item_content"):
        build_tables(
            pd.DataFrame({"item_id": [1, 2]}),
            pd.DataFrame({"user_id": [1]}),
            pd.DataFrame({"item_idx": [0], "timestamp": [1]}),
            np.zeros((3, 4), np.float32),
            SOURCES,
        )
