"""``hybridrec train --data`` on a folder in the project's format: the generated bookshop.

String SKUs and customer ids reach today's integer pipeline through the one id-mapping step
(training/data/ids.py); the bundle's ids are those integers (string ids in the bundle and the
API are the next step of issue 19).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from tests.support.bookshop import write_bookshop
from tests.support.small_bundle import next_item_wins
from training.data import load_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bookshop_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from hybridrec import cli

    root = tmp_path_factory.mktemp("bookshop")
    data = write_bookshop(root / "bookshop")
    out = root / "artifacts"
    assert cli.main(["train", "--data", str(data), "--out", str(out), "--quick"]) == 0
    return data, out


def test_bundle_holds_the_bookshop_through_the_id_map(bookshop_bundle: tuple[Path, Path]) -> None:
    data, out = bookshop_bundle
    bundle = load_bundle(out)
    manifest = json.loads((bundle.path("items.parquet").parent / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "bookshop"
    assert manifest["dataset"]["id_maps"] == {"users": "dense", "items": "dense"}
    ds = load_dataset(data)
    assert ds.id_maps is not None
    items = bundle.load_parquet(L.ITEMS)
    skus = pd.read_csv(data / "items.csv")["sku"]
    assert sorted(ds.id_maps["items"].to_str(items["item_id"])) == sorted(skus)
    by_sku = dict(zip(skus, pd.read_csv(data / "items.csv")["categories"], strict=True))
    first = items.iloc[0]
    sku = ds.id_maps["items"].to_str([first["item_id"]])[0]
    assert list(first["genres"]) == by_sku[sku].split("|")  # categories feed the genre slot
    users = bundle.load_parquet(L.USERS)
    customers = pd.read_json(data / "users.jsonl", lines=True)["customer"]
    assert set(ds.id_maps["users"].to_str(users["user_id"])) == set(customers)


def test_user_vectors_prefer_their_next_books(bookshop_bundle: tuple[Path, Path]) -> None:
    wins = next_item_wins(bookshop_bundle[1])
    # A random model wins about 30 of 60; 38 or more has p < 0.03 under chance.
    assert wins >= 38, wins
