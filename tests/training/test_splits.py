"""Properties of the deterministic splits in training.splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import ConfigError, DataError
from training.data.dataset import Dataset
from training.splits import (
    SPLIT_KINDS,
    k_core_filter,
    make_split,
    preprocess,
    ratio_counts,
    threshold,
)


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
def test_parts_are_disjoint_typed_and_positive(kind: str) -> None:
    split = make_split(_dataset(), kind, k_core=3)
    tr, va, te = _pairs(split.train), _pairs(split.valid), _pairs(split.test)
    assert tr and va and te
    assert not (tr & va) and not (tr & te) and not (va & te)
    for part in (split.train, split.valid, split.test):
        assert list(part.columns) == ["user_id", "item_id", "rating", "timestamp"]
        assert (part["rating"] >= 3.0).all()
    assert split.kind == kind
    assert (split.cutoff is not None) == (kind == "temporal")


@pytest.mark.parametrize("kind", ["random", "temporal-user"])
def test_per_user_kinds_cover_the_k_cored_data(kind: str) -> None:
    ds = _dataset()
    split = make_split(ds, kind, k_core=3)
    kept = preprocess(ds.interactions, min_rating=3.0, k_core=3)
    assert _pairs(split.train) | _pairs(split.valid) | _pairs(split.test) == _pairs(kept)
    assert len(split.train) + len(split.valid) + len(split.test) == len(kept)


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


def test_temporal_is_one_global_time_cut() -> None:
    ds = _dataset(n_users=80, seed=2)
    ds.interactions["timestamp"] = np.random.default_rng(3).integers(
        0, 10_000, len(ds.interactions))
    split = make_split(ds, "temporal", k_core=3)
    cutoff, valid_cutoff = split.cutoff, split.params["valid_cutoff"]
    assert isinstance(cutoff, int) and valid_cutoff < cutoff
    assert split.train["timestamp"].max() < valid_cutoff
    assert split.valid["timestamp"].min() >= valid_cutoff
    assert split.valid["timestamp"].max() < cutoff
    assert split.test["timestamp"].min() >= cutoff
    # The cut is the 0.9 (test) and 0.8 (valid) time quantile of the thresholded rows.
    positive = threshold(ds.interactions, 3.0)
    ts = np.sort(positive["timestamp"].to_numpy())
    assert cutoff - 1 == ts[int(np.ceil(0.9 * len(ts))) - 1]
    assert valid_cutoff - 1 == ts[int(np.ceil(0.8 * len(ts))) - 1]
    # Train is the k-core of everything before the validation slice ...
    early = positive[positive["timestamp"] < valid_cutoff]
    assert _pairs(split.train) == _pairs(k_core_filter(early, 3))
    # ... and test is every later row of a user and an item that have training rows.
    late = positive[positive["timestamp"] >= cutoff]
    known = late[late["user_id"].isin(split.train["user_id"])
                 & late["item_id"].isin(split.train["item_id"])]
    assert _pairs(split.test) == _pairs(known)
    assert split.params["test_dropped_unknown_user_or_item"] == len(late) - len(known)
    assert split.params["k_core_on"] == "train" and split.params["test_frac"] == 0.1
    # No seed in it: the time decides.
    other = make_split(ds, "temporal", k_core=3, seed=99)
    pd.testing.assert_frame_equal(other.test, split.test)


def test_temporal_k_core_does_not_see_the_future() -> None:
    # Item 7 has two early ratings and many late ones: a k-core over all the data would
    # keep it in training, a k-core over the training period drops it.
    rows = [(u, i, 5.0, u * 10 + i) for u in range(1, 9) for i in range(1, 5)]
    rows += [(1, 7, 5.0, 5), (2, 7, 5.0, 6)]
    rows += [(u, 7, 5.0, 1_000 + u) for u in range(1, 9)] + [(u, 5, 5.0, 2_000 + u)
                                                           for u in range(1, 9)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    ds = Dataset(name="toy", interactions=inter, items=pd.DataFrame({"item_id": [1]}),
                 users=pd.DataFrame({"user_id": range(1, 9)}))
    split = make_split(ds, "temporal", k_core=3, valid_frac=0.1, test_frac=0.3)
    assert 7 not in set(split.train["item_id"])
    assert 7 not in set(split.test["item_id"]) and 5 not in set(split.test["item_id"])
    assert 7 in set(preprocess(inter, min_rating=None, k_core=3)["item_id"])


def test_temporal_user_is_the_per_user_tail() -> None:
    split = make_split(_dataset(), "temporal-user", k_core=3)
    assert split.cutoff is None
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


def test_cold_items_are_drawn_before_the_k_core_and_never_trained_on() -> None:
    ds = _dataset()
    split = make_split(ds, "cold-items", k_core=6, seed=5)
    cold = split.cold_items
    assert cold is not None and len(cold) > 0
    positive = threshold(ds.interactions, 3.0)
    counts = positive.groupby("item_id").size()
    eligible = counts[counts >= 5]
    # Eligibility is decided on the data before any k-core: a 6-core over all the data
    # would leave fewer items than are eligible here.
    assert split.params["n_eligible_items"] == len(eligible)
    assert preprocess(ds.interactions, k_core=6)["item_id"].nunique() < len(eligible)
    assert split.params["n_cold_drawn"] == round(0.1 * len(eligible))
    assert set(cold) <= set(eligible.index)
    warm = pd.concat([split.train, split.valid])
    assert not warm["item_id"].isin(cold).any()
    assert split.test["item_id"].isin(cold).all()
    # The k-core ran on the warm part only ...
    assert warm.groupby("user_id").size().min() >= 6
    assert warm.groupby("item_id").size().min() >= 6
    # ... and test holds every held-out item's rows of users with training data.
    held = positive[positive["item_id"].isin(cold)]
    assert _pairs(split.test) == _pairs(held[held["user_id"].isin(split.train["user_id"])])


def test_bad_arguments_raise_config_errors() -> None:
    ds = _dataset()
    with pytest.raises(ConfigError, match="unknown split kind"):
        make_split(ds, "leave-one-out")
    with pytest.raises(ConfigError, match="add up"):
        make_split(ds, "random", valid_frac=0.5, test_frac=0.5)
    with pytest.raises(DataError, match="no interactions left"):
        make_split(ds, "random", k_core=1000)
