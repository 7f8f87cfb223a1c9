"""training.data.view: which user tags a model trained on some interactions may see."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.catalogue_data import catalogue_eval_data
from training.data.dataset import Dataset
from training.data.view import MAX_TAGS, split_view, training_items, training_tags
from training.splits import Split


def _inter(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(u, i, 4.0, t) for u, i, t in rows],
        columns=["user_id", "item_id", "rating", "timestamp"],
    ).astype({"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"})


def _dataset(tags: list[tuple[int, int, str, int]], own: dict[int, list[str]] | None = None,
             rows: list[tuple[int, int, int]] | None = None) -> Dataset:
    own = own or {}
    items = pd.DataFrame({
        "item_id": np.array([1, 2, 3, 4], dtype=np.int64),
        "title": ["A", "B", "C", "D"],
        "year": pd.array([2000, 2001, None, 2003], dtype="Int64"),
        "genres": [["Drama"], ["Comedy"], [], ["Horror"]],
        "tags": [own.get(i, []) for i in (1, 2, 3, 4)],
        "overview": [None] * 4,
    })
    inter = _inter(rows or [(1, 1, 10), (1, 2, 20), (2, 1, 30), (2, 3, 40), (3, 4, 50)])
    return Dataset(
        name="toy", interactions=inter, items=items,
        users=pd.DataFrame({"user_id": np.array([1, 2, 3], dtype=np.int64)}),
        tags=pd.DataFrame(tags, columns=["user_id", "item_id", "tag", "timestamp"]).astype(
            {"user_id": "int64", "item_id": "int64", "timestamp": "int64"}),
    )


def _tags(items: pd.DataFrame) -> dict[int, list[str]]:
    return dict(zip(items["item_id"].tolist(), items["tags"].tolist(), strict=True))


def test_only_training_pairs_count() -> None:
    ds = _dataset([(1, 1, "kept", 11), (3, 1, "never rated", 12), (2, 3, "held out", 41)])
    train = _inter([(1, 1, 10), (1, 2, 20), (2, 1, 30)])  # (2, 3) is not training data
    assert _tags(training_items(ds, train)) == {1: ["kept"], 2: [], 3: [], 4: []}


def test_cutoff_and_per_user_cutoffs() -> None:
    ds = _dataset([(1, 1, "early", 15), (1, 1, "at cutoff", 25), (2, 1, "late", 90)])
    train = _inter([(1, 1, 10), (1, 2, 20), (2, 1, 30)])
    assert _tags(training_items(ds, train, cutoff=25))[1] == ["early"]
    # Per user: user 1's held-out data starts at 25; user 2 has none (no limit).
    starts = pd.Series({1: 25})
    assert _tags(training_items(ds, train, user_cutoffs=starts))[1] == ["early", "late"]
    kept = training_tags(ds.tags, train, user_cutoffs=pd.Series({1: 25, 2: 90}))
    assert kept["tag"].tolist() == ["early"]
    assert training_tags(ds.tags, train)["tag"].tolist() == ["early", "at cutoff", "late"]
    assert training_tags(None, train).empty


def test_most_frequent_first_ties_alphabetical_capped_after_own_tags() -> None:
    rows = [(u, 4, 1) for u in range(1, 4)]
    tags = [(1, 4, f"tag{i:02d}", i) for i in range(25, 0, -1)] + [(2, 4, "tag25", 99),
                                                                    (3, 4, "editorial", 5)]
    ds = _dataset(tags, own={4: ["editorial"]}, rows=rows)
    got = _tags(training_items(ds, _inter(rows)))[4]
    assert len(got) == MAX_TAGS
    assert got == ["editorial", "tag25"] + [f"tag{i:02d}" for i in range(1, MAX_TAGS - 1)]
    assert ds.items["tags"].tolist()[3] == ["editorial"]  # the dataset is not changed


def test_split_view_holds_training_data_only() -> None:
    ds = _dataset([(1, 1, "train pair", 11), (2, 3, "test pair", 41), (3, 4, "late", 200)])
    split = Split(train=_inter([(1, 1, 10), (1, 2, 20), (2, 1, 30), (3, 4, 50)]),
                  valid=_inter([]), test=_inter([(2, 3, 40)]), kind="temporal", seed=0,
                  cutoff=100)
    view = split_view(ds, split)
    assert _tags(view.items) == {1: ["train pair"], 2: [], 3: [], 4: []}
    pd.testing.assert_frame_equal(view.interactions, split.train)
    assert view.tags is not None and view.tags["tag"].tolist() == ["train pair"]
    record = view.info["view"]
    assert isinstance(record, dict)
    assert record["tag_events_kept"] == 1 and record["tag_events_total"] == 3
    user_view = split_view(ds, Split(train=split.train, valid=split.valid, test=split.test,
                                     kind="temporal-user", seed=0,
                                     user_cutoffs=pd.Series({1: 11, 2: 40})))
    # User 1's tag is written at their held-out start; user 3 has no held-out data and
    # no global cutoff applies, so their late tag counts.
    assert _tags(user_view.items) == {1: [], 2: [], 3: [], 4: ["late"]}
    assert user_view.info["view"] == {**record, "split": "temporal-user", "cutoff": None,
                                      "per_user_cutoff": True}


def test_serving_catalogue_uses_the_training_pairs_tags() -> None:
    ds = _dataset([(1, 1, "train pair", 11), (1, 2, "valid pair", 21), (1, 1, "in valid", 22),
                   (2, 1, "no valid", 31)])
    train = _inter([(1, 1, 10), (2, 1, 30)])
    valid = _inter([(1, 2, 20)])  # user 1's validation starts at 20; user 2 has none
    data = catalogue_eval_data(ds, train, valid, seed=0)
    assert _tags(data.items) == {1: ["no valid", "train pair"], 2: [], 3: [], 4: []}
