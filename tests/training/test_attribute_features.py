"""Attributes as features on the generated bookshop: which attributes feed the models, that
their vocabularies and quantiles come from training interactions only (poisoning the
held-out items' and users' attributes changes nothing the encoder learns), and that every
text field reaches the BERT item text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.model.attributes import OOV
from shared.model.text import item_text, text_attributes
from tests.support.bookshop import write_bookshop
from training.attribute_features import attribute_types, fit_attribute_encoder
from training.data import load_dataset
from training.data.dataset import Dataset
from training.embeddings import item_texts
from training.evaluation.base import EvalData
from training.splits import make_split


@pytest.fixture(scope="module")
def bookshop(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return load_dataset(write_bookshop(tmp_path_factory.mktemp("attrs") / "bookshop"))


def test_types_and_the_attributes_read_another_way(bookshop: Dataset) -> None:
    types = attribute_types(bookshop)
    assert types["genres_from"] == "categories" and types["year_from"] == "year"
    assert types["items"]["authors"] == {"type": "categorical", "list": True}
    assert types["items"]["description"]["type"] == "text"
    assert types["users"] == {"country": {"type": "categorical", "list": False},
                              "age": {"type": "numeric", "list": False}}
    sp = make_split(bookshop, "temporal-user", seed=3, min_rating=None, k_core=2)
    enc = fit_attribute_encoder(EvalData.from_split(bookshop, sp))
    assert enc is not None
    # categories and year feed the genre multi-hot and year bucket; the rest is here
    assert enc.item.names == ["authors", "price", "pages"]
    assert enc.user.names == ["country", "age"]


def test_a_movielens_like_dataset_has_no_attribute_encoder(bookshop: Dataset) -> None:
    plain = dataclasses.replace(bookshop, item_attributes=None, user_attributes=None,
                                item_attribute_schema=None)
    sp = make_split(plain, "random", seed=3, min_rating=None, k_core=2)
    assert fit_attribute_encoder(EvalData.from_split(plain, sp)) is None


def _poisoned(ds: Dataset, items: set[int], users: set[int]) -> Dataset:
    """The held-out items' and users' attributes replaced by values never seen elsewhere."""
    assert ds.item_attributes is not None and ds.user_attributes is not None
    ia = ds.item_attributes.copy()
    hit = ia["item_id"].isin(items)
    ia.loc[hit, "authors"] = pd.Series([["zzleak-author"]] * int(hit.sum()),
                                       index=ia.index[hit], dtype=object)
    ia.loc[hit, "price"] = 1e6
    ua = ds.user_attributes.copy()
    uhit = ua["user_id"].isin(users)
    ua.loc[uhit, "country"] = "ZZ"
    ua.loc[uhit, "age"] = 999.0
    return dataclasses.replace(ds, item_attributes=ia, user_attributes=ua)


def test_vocabularies_and_quantiles_never_see_held_out_rows(bookshop: Dataset) -> None:
    sp = make_split(bookshop, "cold-items", seed=5, min_rating=None, k_core=2,
                    cold_min_ratings=2)
    assert sp.cold_items is not None and len(sp.cold_items)
    train_users = set(sp.train["user_id"].tolist())
    other_users = set(bookshop.interactions["user_id"].tolist()) - train_users
    # also users who only have a users-table row (none in training)
    clean = EvalData.from_split(bookshop, sp)
    dirty = EvalData.from_split(_poisoned(bookshop, set(sp.cold_items.tolist()), other_users),
                                sp)
    a, b = fit_attribute_encoder(clean), fit_attribute_encoder(dirty)
    assert a is not None and b is not None
    assert a.item.to_dict() == b.item.to_dict() and a.user.to_dict() == b.user.to_dict()
    assert all("zzleak-author" not in s.vocab for s in b.item.categorical)
    cold = np.searchsorted(dirty.item_ids, sp.cold_items)
    rows = b.item.rows(cold)
    assert (rows["item_cat_0"][:, 0] == OOV).all()  # the poisoned author is out of vocabulary
    assert np.allclose(rows["item_num"][:, 0], 1.0)  # 1e6 clips to the training maximum


def test_every_text_field_reaches_the_item_text(bookshop: Dataset) -> None:
    texts = item_texts(bookshop.items)
    assert bookshop.item_attributes is not None
    desc = bookshop.item_attributes.set_index("item_id")["description"]
    for iid, text in zip(bookshop.items["item_id"].head(20), texts[:20], strict=True):
        assert desc[iid] in text
    # a second text field and an item added at run time: the same text as the reader's
    decls = [{"name": "description", "type": "text"}, {"name": "blurb", "type": "text"},
             {"name": "authors", "type": "categorical"}]
    joined = text_attributes(None, {"description": "A quiet book.", "blurb": "  Loud. ",
                                    "authors": "x"}, decls)
    assert joined == "A quiet book.\n\nLoud."
    assert item_text("T", 2001, ["a"], [], joined) == "T (2001). Genres: a. A quiet book. Loud."
    assert text_attributes("Own overview", {}, decls) == "Own overview"
    assert text_attributes(None, {"blurb": " "}, decls) is None


def test_generic_reader_joins_every_text_attribute(tmp_path: Path) -> None:
    folder = write_bookshop(tmp_path / "two-texts", n_items=30, n_users=20)
    items = pd.read_csv(folder / "items.csv")
    items["blurb"] = [f"blurb number {i}" for i in range(len(items))]
    items.to_csv(folder / "items.csv", index=False)
    schema = (folder / "schema.yaml").read_text().replace(
        "    description: text\n", "    description: text\n    blurb: text\n")
    (folder / "schema.yaml").write_text(schema)
    ds = load_dataset(folder)
    texts = item_texts(ds.items)
    assert all("blurb number" in t and " book about a " in t for t in texts)
