"""The bundle's item attributes: every attribute and ``available`` as items columns, their
declarations, and the serving Catalogue reading them back (issue 19 point 5 foundation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shared.contracts import bundle_layout as L
from shared.model.catalogue import Catalogue
from tests.support.bookshop import write_bookshop
from training.data.dataset import Dataset
from training.data.generic import load_generic
from training.item_attributes import attribute_columns


def _catalogue(ds: Dataset, tmp_path: Path) -> tuple[Catalogue, list[dict[str, object]]]:
    cols, decls = attribute_columns(ds, ds.items)
    items = pd.concat([ds.items.assign(item_id=ds.items["item_id"].astype(str)), cols], axis=1)
    items.to_parquet(tmp_path / "items.parquet", index=False)  # the bundle's round trip
    return Catalogue.from_frame(pd.read_parquet(tmp_path / "items.parquet"), decls), decls


def test_bookshop_attributes_reach_the_catalogue(tmp_path: Path) -> None:
    ds = load_generic(write_bookshop(tmp_path / "shop"))
    cat, decls = _catalogue(ds, tmp_path)
    by_name = {d["name"]: d for d in decls}
    assert by_name["categories"] == {"name": "categories", "type": "categorical", "list": True}
    assert by_name["price"]["type"] == "numeric" and by_name["description"]["type"] == "text"
    assert cat.attribute_types == {"categories": "categorical", "authors": "categorical",
                                   "price": "numeric", "pages": "numeric", "year": "numeric"}
    src = ds.item_attributes
    assert src is not None
    src = src.set_index("item_id").loc[ds.items["item_id"]]
    assert cat.categorical["categories"] == [list(v) for v in src["categories"]]
    assert cat.numeric["price"].dtype == np.float32
    np.testing.assert_allclose(cat.numeric["price"], src["price"].to_numpy(np.float32))
    np.testing.assert_array_equal(cat.available, src["available"].to_numpy(bool))
    assert (~cat.available).sum() > 0
    pos = int(np.flatnonzero(~cat.available)[0])
    rec = cat.record(pos)
    assert rec["available"] is False and isinstance(rec["attributes"]["categories"], list)
    assert isinstance(rec["attributes"]["price"], float)


def test_movielens_shaped_dataset_declares_genres_and_year(tmp_path: Path) -> None:
    items = pd.DataFrame({
        "item_id": np.array([1, 2], np.int64), "title": ["A", "B"],
        "year": pd.array([1995, None], dtype="Int64"), "genres": [["Comedy", "Drama"], []],
        "tags": [[], []], "overview": [None, None]})
    ds = Dataset(name="ml", interactions=pd.DataFrame(), items=items, users=pd.DataFrame())
    cat, decls = _catalogue(ds, tmp_path)
    assert [d["name"] for d in decls] == ["genres", "year"]
    assert cat.attribute_types == {"genres": "categorical", "year": "numeric"}
    assert cat.categorical["genres"] == [["Comedy", "Drama"], []]
    assert cat.numeric["year"][0] == 1995 and np.isnan(cat.numeric["year"][1])
    assert cat.available.tolist() == [True, True]


def test_old_bundle_without_attribute_columns() -> None:
    frame = pd.DataFrame({"item_id": ["1"], "title": ["A"], "year": [2001],
                          "genres": [["X"]], "tags": [[]], "overview": [None]})
    cat = Catalogue.from_frame(frame)
    assert cat.attribute_types == {"genres": "categorical", "year": "numeric"}
    assert cat.available.tolist() == [True]
    assert L.AVAILABLE not in frame.columns


def test_row_attributes_for_popular_json(tmp_path: Path) -> None:
    from training.item_attributes import row_attributes

    ds = load_generic(write_bookshop(tmp_path / "shop"))
    cols, decls = attribute_columns(ds, ds.items)
    row = row_attributes(cols, decls, 0)
    assert set(row) == {"categories", "authors", "price", "pages", "year"}
    assert isinstance(row["categories"], list) and isinstance(row["price"], float)
