"""The attribute encoder: vocabularies and quantiles from training rows only, OOV and padding,
list attributes, missing values, request overrides and the JSON + npz round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import BundleError
from shared.model.attributes import OOV, PAD, AttributeEncoder, categories, category, number

ITEM_TYPES = {
    "authors": {"type": "categorical", "list": True},
    "format": {"type": "categorical", "list": False},
    "price": {"type": "numeric", "list": False},
    "blurb": {"type": "text", "list": False},
    "isbn_id": {"type": "external_id", "list": False},
}
USER_TYPES = {"country": {"type": "categorical"}, "age": {"type": "numeric"}}


def _items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [10, 11, 12, 13],
        "authors": [["ann", "bob"], ["bob"], ["cid"], ["zed", "ann", "bob", "cid"]],
        "format": ["paper", "paper", None, "cloth"],
        "price": [5.0, 10.0, np.nan, 1000.0],
        "blurb": ["a", "b", "c", "d"],
        "isbn_id": ["1", "2", "3", "4"],
    })


def _users() -> pd.DataFrame:
    return pd.DataFrame({"user_id": [1, 2, 3], "country": ["FR", "DE", "IT"],
                         "age": [20.0, 40.0, np.nan]})


def _fit(**kw: object) -> AttributeEncoder:
    # items 0, 1, 2 have training interactions (item 1 twice); item 3 is held out.
    # users 0 and 1 train; user 2 is held out.
    args: dict[str, object] = dict(
        item_table=_items(), item_types=ITEM_TYPES, train_item_idx=np.array([0, 1, 1, 2]),
        user_table=_users(), user_types=USER_TYPES, train_user_idx=np.array([0, 0, 1, 1]))
    args.update(kw)
    return AttributeEncoder.fit(**args)  # type: ignore[arg-type]


def test_only_categorical_and_numeric_attributes_are_features() -> None:
    enc = _fit()
    assert enc.item.names == ["authors", "format", "price"]
    assert enc.user.names == ["country", "age"]
    assert list(enc.item.input_specs()) == ["item_cat_0", "item_cat_1", "item_num"]
    assert enc.item.input_specs()["item_num"] == (2, 0)


def test_vocabulary_by_training_frequency_and_held_out_values_are_oov() -> None:
    enc = _fit()
    authors = enc.item.categorical[0]
    # bob: items 0 (1x) + 1 (2x) = 3; ann 1; cid 1 (ties alphabetical); zed only held out
    assert authors.vocab == ["bob", "ann", "cid"]
    assert enc.user.categorical[0].vocab == ["DE", "FR"]  # IT is a held-out user's
    rows = enc.item.rows(np.arange(4))["item_cat_0"]
    assert authors.max_values == 4
    assert rows[0].tolist() == [3, 2, PAD, PAD]  # ann, bob
    assert rows[3].tolist() == [OOV, 3, 2, 4]  # zed unknown, then ann, bob, cid
    assert enc.user.rows(np.array([2]))["user_cat_0"].tolist() == [[OOV]]


def test_max_vocab_and_max_values_cap() -> None:
    enc = _fit(max_vocab=1, max_values=2)
    assert enc.item.categorical[0].vocab == ["bob"]
    assert enc.item.rows(np.array([3]))["item_cat_0"].tolist() == [[OOV, 2]]  # duplicates once


def test_numeric_quantiles_come_from_training_rows_and_missing_is_flagged() -> None:
    enc = _fit()
    spec = enc.item.numeric[0]
    # item 3's 1000 is held out and item 2 has no price: the quantiles of {5, 10}
    assert (spec.knots[0], spec.knots[-1]) == (5.0, 10.0)
    num = enc.item.rows(np.arange(4))["item_num"]
    assert num[:, 0].tolist() == [-1.0, 1.0, 0.0, 1.0]  # 1000 clips to the top
    assert num[:, 1].tolist() == [0.0, 0.0, 1.0, 0.0]
    mid = spec.encode([7.5, "7.5", None, "n/a", float("inf")])
    assert mid[:, 0].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.0], abs=1e-6)
    assert mid[:, 1].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert mid.dtype == np.float32


def test_quantile_position_is_monotone_and_robust_to_outliers() -> None:
    rng = np.random.default_rng(0)
    prices = np.concatenate([rng.lognormal(2, 1, 500), [1e9]])
    table = pd.DataFrame({"price": prices})
    enc = AttributeEncoder.fit(item_table=table, item_types={"price": {"type": "numeric"}},
                               train_item_idx=np.arange(len(prices)))
    pos = enc.item.numeric[0].encode(np.sort(prices))[:, 0]
    assert (np.diff(pos) >= 0).all() and pos[0] == -1.0 and pos[-1] == 1.0
    assert abs(float(np.median(pos))) < 0.05  # the outlier does not squash the rest


def test_records_encode_like_the_stored_rows() -> None:
    enc = _fit()
    items = _items()
    recs = [{k: items[k].iat[i] for k in ("authors", "format", "price")} for i in range(4)]
    got = enc.item.encode_records(recs)
    stored = enc.item.rows(np.arange(4))
    for k in stored:
        np.testing.assert_array_equal(got[k], stored[k])
    # the same item as text from a CSV or a JSON request
    text = enc.item.encode_records([{"authors": "ann|bob", "format": "paper", "price": "5"}])
    for k in stored:
        np.testing.assert_array_equal(text[k][0], stored[k][0])


def test_anonymous_and_overridden_users() -> None:
    enc = _fit()
    anon = enc.user.rows(np.array([0]), known=np.array([False]))
    assert anon["user_cat_0"].tolist() == [[PAD]] and anon["user_num"].tolist() == [[0.0, 1.0]]
    known = enc.user.rows(np.array([0, 1]))
    over = enc.user.overlay(known, [{"country": "DE"}, None])
    assert known["user_cat_0"][:, 0].tolist() == [3, 2]  # FR, DE
    assert over["user_cat_0"][:, 0].tolist() == [2, 2]  # user 0 now DE, user 1 unchanged
    np.testing.assert_array_equal(over["user_num"], known["user_num"])  # age kept
    assert enc.user.overlay(known, [{"unknown": 1}, None])["user_cat_0"].tolist() == \
        known["user_cat_0"].tolist()


def test_skipped_attributes_and_empty_encoder() -> None:
    enc = _fit(skip_items=["authors", "format", "price"], skip_users=["country", "age"])
    assert enc.empty
    assert AttributeEncoder.fit(item_table=None, item_types={},
                                train_item_idx=np.zeros(0, np.int64)).empty


def test_save_load_round_trip(tmp_path: Path) -> None:
    enc = _fit()
    enc.save(tmp_path)
    back = AttributeEncoder.load(tmp_path)
    assert back is not None
    assert back.item.to_dict() == enc.item.to_dict()
    assert back.user.to_dict() == enc.user.to_dict()
    for side_a, side_b in ((enc.item, back.item), (enc.user, back.user)):
        ra, rb = side_a.rows(np.arange(2)), side_b.rows(np.arange(2))
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k])
    assert AttributeEncoder.load(tmp_path / "nothing") is None
    (tmp_path / "attributes.json").write_text('{"schema_version": 99}')
    with pytest.raises(BundleError, match="rebuild the bundle"):
        AttributeEncoder.load(tmp_path)


def test_cell_readers() -> None:
    assert category(25.0) == "25" and category("  a  b ") == "a b" and category(None) is None
    assert categories("x|y", True) == ["x", "y"] and categories("x|y", False) == ["x|y"]
    assert categories(np.array(["x", None]), False) == ["x"]
    assert np.isnan(number(True)) and number("3.5") == 3.5 and np.isnan(number(pd.NA))
