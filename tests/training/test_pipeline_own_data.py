"""``hybridrec train --data`` on a folder in the project's format: the generated bookshop.

String SKUs and customer ids become integers inside training (training/data/ids.py) and the
dataset's own ids again in the bundle: items.parquet, users.parquet, popular.json and the
feature encoder name "sku-000042" and "cust-0007", never the integers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from tests.support.small_bundle import next_item_wins

pytestmark = pytest.mark.slow


def test_bundle_holds_the_bookshops_own_string_ids(bookshop_bundle: tuple[Path, Path]) -> None:
    data, out = bookshop_bundle
    bundle = load_bundle(out)
    manifest = json.loads((bundle.path("items.parquet").parent / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "bookshop"
    assert manifest["dataset"]["id_maps"] == {"users": "dense", "items": "dense"}
    items = bundle.load_parquet(L.ITEMS)
    shop_items = pd.read_csv(data / "items.csv")
    skus = shop_items["sku"]
    assert sorted(items["item_id"]) == sorted(skus)  # the SKUs themselves, as strings
    by_sku = dict(zip(skus, shop_items["categories"], strict=True))
    first = items.iloc[0]
    assert list(first["genres"]) == by_sku[first["item_id"]].split("|")  # categories: genres
    users = bundle.load_parquet(L.USERS)
    customers = set(pd.read_json(data / "users.jsonl", lines=True)["customer"])
    assert set(users["user_id"]) <= customers and len(users) > 100
    history = [i for h in users["history"] for i in h]
    assert history and set(history) <= set(skus)
    popular = json.loads(bundle.path(L.POPULAR).read_text())
    assert popular and all(p["item_id"] in by_sku for p in popular)
    encoder = json.loads(bundle.path(L.FEATURES).read_text())
    assert encoder["item_ids"] == items["item_id"].tolist()
    # The models' users first, in the encoder's order; then the users the models never saw
    # (only hides/dislikes or low ratings: known, with an empty history; training.known_users).
    n_model = len(encoder["user_ids"])
    assert encoder["user_ids"] == users["user_id"].tolist()[:n_model]
    others = users.iloc[n_model:]
    assert all(len(h) == 0 for h in others["history"]), others
    assert len(others) >= 1  # the bookshop's last customer only hid and disliked books


def test_user_vectors_prefer_their_next_books(bookshop_bundle: tuple[Path, Path]) -> None:
    wins = next_item_wins(bookshop_bundle[1])
    # A random model wins about 30 of 60; 38 or more has p < 0.03 under chance.
    assert wins >= 38, wins
