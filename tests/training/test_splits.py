"""Properties of the deterministic splits in training.splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import ConfigError, DataError
from training.data.dataset import Dataset
from training.splits import SPLIT_KINDS, make_split, preprocess, ratio_counts


def _dataset(n_users: int = 50, n_items: int = 60, seed: int = 1) -> Dataset:
    """Random ratings (about 20 per user), ratings 1..5, timestamps with many ties."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(8, 30))
        for i in rng.choice(n_items, n, replace=False):
            rows.append((u, int(i) * 10, float(rng.integers(1, 6)), int(rng.integers(0, 40))))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]).astype(
        {"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"}
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(n_items, dtype=np.int64) * 10,
            "title": "t",
            "genres": [["Drama"]] * n_items,
        }
    )
    users = pd.DataFrame({"user_id": np.arange(n_users, dtype=np.int64)})
    return Dataset(name="toy", interactions=inter, items=items, users=users)


def _pairs(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df["user_id"].tolist(), df["item_id"].tolist(), strict=True))


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_parts_are_disjoint_and_cover_the_filtered_data(kind: str) -> None:
    ds = _dataset()
    split = make_split(ds, kind, k_core=3)
    tr, va, te = _pairs(split.train), _pairs(split.valid), _pairs(split.test)
    assert tr and va and te
    assert not (tr & va) and not (tr & te) and not (va & te)
    kept = preprocess(ds.interactions, min_rating=3.0, k_core=3)
    assert tr | va | te == _pairs(kept)
    assert len(split.train) + len(split.valid) + len(split.test) == len(kept)
    assert list(split.train.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert (split.train["rating"] >= 3.0).all()


@pytest.mark.parametrize("kind", ["random", "cold-items"])
def test_same_seed_same_split_other_seed_other_split(kind: str) -> None:
    ds = _dataset()
    a = make_split(ds, kind, seed=7, k_core=3)
    b = make_split(ds, kind, seed=7, k_core=3)
    c = make_split(ds, kind, seed=8, k_core=3)
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    assert _pairs(a.test) != _pairs(c.test)
    # Row order of the input does not matter either.
    shuffled = _dataset()
    shuffled.interactions = shuffled.interactions.sample(frac=1.0, random_state=3)
    d = make_split(shuffled, kind, seed=7, k_core=3)
    pd.testing.assert_frame_equal(a.test, d.test)


def test_k_core_holds_after_filtering_and_is_iterated() -> None:
    kept = preprocess(_dataset().interactions, min_rating=None, k_core=12)
    assert len(kept) > 0
    assert kept.groupby("user_id").size().min() >= 12
    assert kept.groupby("item_id").size().min() >= 12
    # One pass is not enough here: u3 and i3 go first, then i2 and u2, then u1/i1.
    rows = [(1, 1), (1, 2), (2, 1), (2, 3), (3, 2), (4, 4), (4, 5), (5, 4), (5, 5)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(rating=5.0, timestamp=0)
    out = preprocess(df, min_rating=None, k_core=2)
    assert _pairs(out) == {(4, 4), (4, 5), (5, 4), (5, 5)}
    assert len(preprocess(df, min_rating=None, k_core=0)) == len(rows)


def test_min_rating_threshold() -> None:
    ds = _dataset()
    assert len(preprocess(ds.interactions, min_rating=None, k_core=0)) == len(ds.interactions)
    kept = preprocess(ds.interactions, min_rating=4.0, k_core=0)
    assert len(kept) == int((ds.interactions["rating"] >= 4.0).sum())


def test_ratio_counts_follow_recbole_and_keep_one_train_row() -> None:
    n_train, n_valid, n_test = ratio_counts(np.array([1, 2, 3, 10, 25]), 0.1, 0.1)
    assert n_train.tolist() == [1, 1, 1, 8, 21]
    assert n_valid.tolist() == [0, 0, 1, 1, 2]
    assert n_test.tolist() == [0, 1, 1, 1, 2]


def test_random_split_is_80_10_10_per_user() -> None:
    split = make_split(_dataset(), "random", k_core=3)
    sizes = pd.concat([split.train, split.valid, split.test]).groupby("user_id").size()
    for part, frac in (("valid", 0.1), ("test", 0.1)):
        got = getattr(split, part).groupby("user_id").size().reindex(sizes.index, fill_value=0)
        expect = np.maximum(np.floor(frac * sizes), 1)
        assert (got == expect).all()


def test_temporal_test_is_never_earlier_than_train_or_valid() -> None:
    split = make_split(_dataset(), "temporal", k_core=3)
    last_train = split.train.groupby("user_id")["timestamp"].max()
    first_test = split.test.groupby("user_id")["timestamp"].min()
    last_valid = split.valid.groupby("user_id")["timestamp"].max()
    first_valid = split.valid.groupby("user_id")["timestamp"].min()
    assert (first_test >= last_train.reindex(first_test.index)).all()
    both = first_test.index.intersection(last_valid.index)
    assert (first_test[both] >= last_valid[both]).all()
    assert (first_valid >= last_train.reindex(first_valid.index)).all()
    sizes = pd.concat([split.train, split.valid, split.test]).groupby("user_id").size()
    n_test = split.test.groupby("user_id").size()
    assert (n_test == np.maximum(np.floor(0.2 * sizes[n_test.index]), 1)).all()
    assert split.params["test_frac"] == 0.2


def test_cold_items_are_never_trained_on() -> None:
    ds = _dataset()
    split = make_split(ds, "cold-items", k_core=3, seed=5)
    cold = split.cold_items
    assert cold is not None and len(cold) > 0
    kept = preprocess(ds.interactions, min_rating=3.0, k_core=3)
    counts = kept.groupby("item_id").size()
    assert len(cold) == round(0.1 * int((counts >= 5).sum()))
    assert (counts[cold] >= 5).all()
    assert not split.train["item_id"].isin(cold).any()
    assert not split.valid["item_id"].isin(cold).any()
    assert split.test["item_id"].isin(cold).all()
    assert len(split.test) == int(kept["item_id"].isin(cold).sum())


def test_bad_arguments_raise_config_errors() -> None:
    ds = _dataset()
    with pytest.raises(ConfigError, match="unknown split kind"):
        make_split(ds, "leave-one-out")
    with pytest.raises(ConfigError, match="add up"):
        make_split(ds, "random", valid_frac=0.5, test_frac=0.5)
    with pytest.raises(DataError, match="no interactions left"):
        make_split(ds, "random", k_core=1000)
