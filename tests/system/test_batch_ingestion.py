"""Bulk ingestion end to end on the bookshop (issue 19.5): ``POST /v1/items:batch`` and
``POST /v1/events:batch`` through the real gateway, retrieval and Redis; each row answered
with its own status, nothing half-written, a malformed body refused as a whole."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def users(bookshop_bundle: tuple[Path, Path]) -> pd.DataFrame:
    return pd.read_parquet(bookshop_bundle[1] / "latest" / "users.parquet")


def test_items_batch_answers_each_row(shop_gw: httpx.Client) -> None:
    rows = [
        {"item_id": "sku-b-1", "title": "Winter Harbour", "overview": "Crime at sea.",
         "attributes": {"categories": ["crime"], "price": 9.0}},
        {"item_id": "sku-b-2"},  # no title
        {"item_id": "sku-000001", "title": "Taken"},  # a catalogue SKU: 409
        {"item_id": "sku-b-3", "title": "Orchard Letters", "available": False},
    ]
    r = shop_gw.post("/v1/items:batch", json=rows)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["rows"]] == [201, 422, 409, 201], body
    assert body["accepted"] == 2 and body["rejected"] == 2
    assert "title" in body["rows"][1]["error"]
    assert shop_gw.get("/v1/items/sku-b-1").json()["attributes"]["categories"] == ["crime"]
    assert shop_gw.get("/v1/items/sku-b-2").status_code == 404  # nothing half-written
    assert shop_gw.get("/v1/items/sku-b-3").json()["available"] is False
    found = shop_gw.post("/v1/recommendations", json={
        "recent_item_ids": ["sku-000002"], "k": 5,
        "filter": {"include": {"categories": ["crime"]}, "range": {"price": {"lte": 9}}}}).json()
    assert "sku-b-1" in [it["item_id"] for it in found["items"]]


def test_events_batch_ndjson_reuses_the_single_event_path(
    shop_gw: httpx.Client, users: pd.DataFrame
) -> None:
    user = users.iloc[5].user_id
    lines = [
        {"user_id": user, "item_id": "sku-000010", "type": "click"},
        {"user_id": user, "item_id": "sku-999999", "type": "view"},  # unknown item: 404
        {"user_id": user, "item_id": "sku-000011", "type": "rating"},  # no rating: 422
        {"item_id": "sku-000012"},  # no user: 422
        {"user_id": "bad user", "item_id": "sku-000012"},  # id alphabet: 422
        {"user_id": user, "item_id": "sku-000013", "type": "view", "timestamp": 1764288000},
    ]
    raw = "\n".join(json.dumps(x) for x in lines) + "\n"
    r = shop_gw.post("/v1/events:batch", content=raw,
                headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["rows"]] == [202, 404, 422, 422, 422, 202], body
    assert body["rows"][0]["event_id"] and "user_id" in body["rows"][3]["error"]
    history = shop_gw.get(f"/v1/users/{user}/history", params={"limit": 5}).json()
    recent = [it["item_id"] for it in history["items"][:2]]
    assert set(recent) == {"sku-000010", "sku-000013"}  # stored rows only


@pytest.mark.parametrize(
    "raw",
    [b"", b"[{\"item_id\": \"x\",", b"{\"a\": 1}\nnot json\n", b"[]"],
)
def test_a_malformed_body_is_refused_whole(shop_gw: httpx.Client, raw: bytes) -> None:
    for path in ("/v1/items:batch", "/v1/events:batch"):
        r = shop_gw.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_request"


def test_too_many_rows_is_refused_whole(shop_gw: httpx.Client) -> None:
    rows = [{"title": f"Book {i}"} for i in range(201)]
    r = shop_gw.post("/v1/items:batch", json=rows)
    assert r.status_code == 422 and "200" in r.json()["error"]["message"]
    assert shop_gw.get("/v1/items", params={"q": "Book 200"}).json()["items"] == []
