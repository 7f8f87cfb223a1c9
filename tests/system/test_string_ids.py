"""String ids end to end: the bookshop (SKUs such as "sku-000042", customers such as
"cust-0007") trained, then served by the three services as real processes with real Redis.

Every call goes through the real gateway: recommendations, similar items, item lookup, a
feedback event, a new item with its own id, and bad ids (4xx naming the id alphabet).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pandas as pd
import pytest

from shared.contracts.ids import ID_ALPHABET

pytestmark = pytest.mark.slow

SKU = re.compile(r"^sku-\d{6}$")


@pytest.fixture(scope="module")
def shop(bookshop_bundle: tuple[Path, Path]) -> dict[str, pd.DataFrame]:
    data, out = bookshop_bundle
    return {
        "items": pd.read_csv(data / "items.csv"),
        "users": pd.read_parquet(out / "latest" / "users.parquet"),
    }


def _ok(r: httpx.Response, status: int = 200) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def test_a_customer_gets_books_by_their_skus(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    row = shop["users"].iloc[0]
    assert row.user_id.startswith("cust-")
    body = _ok(shop_gw.get(f"/v1/users/{row.user_id}/recommendations", params={"k": 10}))
    ids = [it["item_id"] for it in body["items"]]
    assert body["user_id"] == row.user_id and body["degraded"] == []
    assert len(ids) == 10 and len(set(ids)) == 10 and all(SKU.match(i) for i in ids), ids
    assert not set(ids) & set(row.history)  # exclude_seen, by string id
    titles = dict(zip(shop["items"]["sku"], shop["items"]["title"], strict=True))
    assert all(it["title"] == titles[it["item_id"]] for it in body["items"])


def test_anonymous_visitor_with_recent_skus(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    recent = shop["items"]["sku"].head(3).tolist()
    body = _ok(shop_gw.post("/v1/recommendations", json={"recent_item_ids": recent, "k": 5}))
    ids = [it["item_id"] for it in body["items"]]
    assert body["user_id"] is None and len(ids) == 5 and not set(ids) & set(recent)
    assert all(SKU.match(i) for i in ids)


def test_item_lookup_and_similar_items_by_sku(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    book = shop["items"].iloc[41]
    item = _ok(shop_gw.get(f"/v1/items/{book.sku}"))
    assert item["item_id"] == book.sku and item["title"] == book.title
    for mode in ("content", "collaborative"):
        body = _ok(shop_gw.get(f"/v1/items/{book.sku}/similar", params={"k": 5, "mode": mode}))
        ids = [it["item_id"] for it in body["items"]]
        assert body["item_id"] == book.sku and len(ids) == 5 and book.sku not in ids
        assert all(SKU.match(i) for i in ids)
    missing = shop_gw.get("/v1/items/sku-999999")
    assert missing.status_code == 404 and "'sku-999999'" in missing.json()["error"]["message"]


def test_an_event_by_string_ids_is_stored_and_shown(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    row = shop["users"].iloc[1]
    unseen = next(s for s in shop["items"]["sku"] if s not in set(row.history))
    accepted = _ok(
        shop_gw.post(f"/v1/users/{row.user_id}/events", json={"item_id": unseen, "type": "click"}),
        202,
    )
    assert accepted["user_id"] == row.user_id and accepted["item_id"] == unseen
    history = _ok(shop_gw.get(f"/v1/users/{row.user_id}/history", params={"limit": 5}))
    assert history["user_id"] == row.user_id
    assert history["items"][0]["item_id"] == unseen and history["items"][0]["source"] == "event"
    after = _ok(shop_gw.get(f"/v1/users/{row.user_id}/recommendations", params={"k": 20}))
    assert unseen not in [it["item_id"] for it in after["items"]]  # seen now


def test_a_new_item_keeps_its_own_id_and_a_taken_one_is_409(shop_gw: httpx.Client) -> None:
    new = {"item_id": "sku-new:2026@shop", "title": "The Orchard Atlas",
           "genres": ["travel"], "overview": "A walk through every orchard of an island."}
    created = _ok(shop_gw.post("/v1/items", json=new), 201)
    assert created["item_id"] == "sku-new:2026@shop" and created["fresh"] is True
    assert _ok(shop_gw.get(f"/v1/items/{quote(new['item_id'])}"))["title"] == new["title"]
    again = shop_gw.post("/v1/items", json=new)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    taken = shop_gw.post("/v1/items", json={**new, "item_id": "sku-000001"})  # a catalogue SKU
    assert taken.status_code == 409, taken.text
    assigned = _ok(shop_gw.post("/v1/items", json={"title": "No Id Given"}), 201)
    assert isinstance(assigned["item_id"], str) and assigned["item_id"].isdigit()
    similar = _ok(shop_gw.get("/v1/items/sku-new:2026@shop/similar", params={"k": 3}))
    assert len(similar["items"]) == 3


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/items/a%20b", None),
        ("GET", f"/v1/items/{'x' * 129}/similar", None),
        ("GET", "/v1/users/%7Bu1%7D/recommendations", None),
        ("GET", "/v1/users/../history", None),
        ("POST", "/v1/recommendations", {"recent_item_ids": [""]}),
        ("POST", "/v1/recommendations", {"user_id": "cust 1"}),
        ("POST", "/v1/recommendations", {"exclude_item_ids": ["sku/1"]}),
        ("POST", "/v1/users/cust-0001/events", {"item_id": "é"}),
        ("POST", "/v1/users/cust-0001/events", {"item_id": 2.5}),
        ("POST", "/v1/items", {"item_id": "a{b}", "title": "x"}),
    ],
)
def test_bad_ids_are_4xx_naming_the_alphabet(
    shop_gw: httpx.Client, method: str, path: str, body: object
) -> None:
    r = shop_gw.request(method, path, json=body)
    if path == "/v1/users/../history":  # resolved away by the client: no such path
        assert r.status_code == 404, r.text
        return
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request" and ID_ALPHABET in err["message"], err


def test_a_json_number_is_read_as_its_text(shop_gw: httpx.Client) -> None:
    r = shop_gw.post("/v1/recommendations", json={"recent_item_ids": [42]})
    assert r.status_code == 404  # "42" is not a SKU: named as text
    assert "'42'" in r.json()["error"]["message"]
