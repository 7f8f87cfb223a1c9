"""Filters, availability and live item changes end to end on the bookshop (issue 19.5).

The bookshop bundle trained by ``hybridrec train --quick``, served by the three services as
real processes with real Redis; every call goes through the real gateway. Expected answers
are computed from the bookshop's own ``items.csv``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shop(bookshop_bundle: tuple[Path, Path]) -> dict[str, pd.DataFrame]:
    data, out = bookshop_bundle
    items = pd.read_csv(data / "items.csv")
    items["cats"] = items["categories"].str.split("|")
    items["auths"] = items["authors"].str.split("|")
    items["avail"] = items["available"].astype(str).str.lower() == "true"
    return {"items": items.set_index("sku"),
            "users": pd.read_parquet(out / "latest" / "users.parquet")}


def _ok(r: httpx.Response, status: int = 200) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


def _ids(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [it["item_id"] for it in body["items"]]


def test_no_unavailable_item_is_ever_recommended(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    items = shop["items"]
    gone = set(items.index[~items["avail"]])
    assert gone
    for row in shop["users"].head(8).itertuples():
        body = _ok(shop_gw.get(f"/v1/users/{row.user_id}/recommendations", params={"k": 50}))
        assert len(body["items"]) == 50 and not set(_ids(body)) & gone
    sim = _ok(shop_gw.get(f"/v1/items/{items.index[0]}/similar", params={"k": 100}))
    assert not set(_ids(sim)) & gone and len(sim["items"]) == 100


def test_include_exclude_and_ranges_on_get(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    items = shop["items"]
    user = shop["users"].iloc[2].user_id
    params = {"k": 10, "include": "categories:fantasy,poetry", "where": ["price<=30"],
              "exclude_seen": "false"}
    body = _ok(shop_gw.get(f"/v1/users/{user}/recommendations", params=params))
    ok = items[items["avail"] & (items["price"] <= 30)
               & items["cats"].map(lambda c: bool({"fantasy", "poetry"} & set(c)))]
    assert len(ok) >= 10
    assert len(body["items"]) == 10 and set(_ids(body)) <= set(ok.index)
    assert body["fewer_than_k"] is False and body["matched"] == len(ok)
    author = items["auths"].iloc[0][0]
    body = _ok(shop_gw.get(f"/v1/users/{user}/recommendations",
                      params={"k": 30, "exclude": f"authors:{author}",
                              "where": ["year>=2000", "pages<500"]}))
    for iid in _ids(body):
        it = items.loc[iid]
        assert author not in it["auths"] and it["year"] >= 2000 and it["pages"] < 500


def test_a_selective_filter_still_gives_k_items_when_k_exist(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    """One author's books: far fewer than the candidates retrieval keeps by default."""
    items = shop["items"]
    counts = items[items["avail"]].explode("auths")["auths"].value_counts()
    author = counts.index[0]
    n = int(counts.iloc[0])
    user = shop["users"].iloc[3].user_id
    body = _ok(shop_gw.get(f"/v1/users/{user}/recommendations",
                      params={"k": n, "include": f"authors:{author}", "exclude_seen": "false"}))
    assert len(body["items"]) == n and body["fewer_than_k"] is False
    more = _ok(shop_gw.get(f"/v1/users/{user}/recommendations",
                      params={"k": n + 5, "include": f"authors:{author}",
                              "exclude_seen": "false"}))
    assert len(more["items"]) == n and more["fewer_than_k"] is True and more["matched"] == n
    assert str(n) in more["fewer_reason"]
    sim = _ok(shop_gw.get(f"/v1/items/{items.index[1]}/similar",
                     params={"k": 5, "include": f"authors:{author}"}))
    assert all(author in items.loc[i]["auths"] for i in _ids(sim))


def test_post_filter_object_and_genres_shorthand(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    items = shop["items"]
    recent = list(items.index[:3])
    body = _ok(shop_gw.post("/v1/recommendations", json={
        "recent_item_ids": recent, "k": 8,
        "filter": {"include": {"categories": ["crime"]}, "range": {"price": {"gte": 10}}}}))
    assert len(body["items"]) == 8
    for iid in _ids(body):
        assert "crime" in items.loc[iid]["cats"] and items.loc[iid]["price"] >= 10
    # genres= is the first categorical attribute here (categories), as before filters
    body = _ok(shop_gw.get(f"/v1/users/{shop['users'].iloc[0].user_id}/recommendations",
                      params={"k": 5, "genres": "travel"}))
    assert all("travel" in items.loc[i]["cats"] for i in _ids(body))
    sim = _ok(shop_gw.get(f"/v1/items/{items.index[5]}/similar",
                     params={"k": 5, "genres": "travel", "where": "price>=5"}))
    assert len(sim["items"]) == 5
    assert all("travel" in items.loc[i]["cats"] and items.loc[i]["price"] >= 5
               for i in _ids(sim))


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"include": "colour:red"}, "colour"),
        ({"where": "categories>=3"}, "categories"),
        ({"include": "price:10"}, "price"),
        ({"where": "price<<3"}, "where"),
        ({"include": "no-colon"}, "include"),
    ],
)
def test_bad_filters_are_422_naming_the_attribute(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame], params: dict[str, str], named: str
) -> None:
    r = shop_gw.get(f"/v1/users/{shop['users'].iloc[0].user_id}/recommendations", params=params)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert named in message
    if named in ("colour", "categories", "price"):
        assert "authors" in message and "pages" in message  # the known attributes


def test_patch_availability_and_attributes_live(
    shop_gw: httpx.Client, shop: dict[str, pd.DataFrame]
) -> None:
    items = shop["items"]
    user = shop["users"].iloc[4].user_id
    first = _ok(shop_gw.get(f"/v1/users/{user}/recommendations", params={"k": 5}))
    top = _ids(first)[0]
    changed = _ok(shop_gw.patch(f"/v1/items/{top}", json={"available": False}))
    assert changed["available"] is False and changed["item_id"] == top
    after = _ok(shop_gw.get(f"/v1/users/{user}/recommendations", params={"k": 5}))
    assert top not in _ids(after) and len(after["items"]) == 5
    # an attribute change moves an item into a filter
    book = next(i for i in items.index if items.loc[i]["avail"] and i != top
                and "poetry" not in items.loc[i]["cats"])
    new_author = "Ann Lee"
    _ok(shop_gw.patch(f"/v1/items/{book}", json={"attributes": {"authors": [new_author],
                                                          "categories": ["poetry"]}}))
    detail = _ok(shop_gw.get(f"/v1/items/{book}"))
    assert detail["attributes"]["authors"] == [new_author]
    body = _ok(shop_gw.get(f"/v1/users/{user}/recommendations",
                      params={"k": 5, "include": f"authors:{new_author}",
                              "exclude_seen": "false"}))
    assert _ids(body) == [book] and body["matched"] == 1 and body["fewer_than_k"] is True
    _ok(shop_gw.patch(f"/v1/items/{top}", json={"available": True}))
    assert _ok(shop_gw.get(f"/v1/items/{top}"))["available"] is True
    bad = shop_gw.patch(f"/v1/items/{book}", json={"attributes": {"colour": "red"}})
    assert bad.status_code == 422 and "colour" in bad.text and "categories" in bad.text
    cheap = shop_gw.patch(f"/v1/items/{book}", json={"attributes": {"price": "cheap"}})
    assert cheap.status_code == 422
    assert shop_gw.patch(f"/v1/items/{book}", json={}).status_code == 422
    assert shop_gw.patch("/v1/items/sku-999999", json={"available": False}).status_code == 404


def test_new_items_carry_attributes_and_filters_apply_to_them(shop_gw: httpx.Client) -> None:
    new = {"item_id": "sku-flt-1", "title": "Garden Letters", "overview": "Poems.",
           "attributes": {"categories": ["poetry"], "authors": ["Zed Quill"], "price": 7.5}}
    created = _ok(shop_gw.post("/v1/items", json=new), 201)
    assert created["attributes"]["authors"] == ["Zed Quill"] and created["available"] is True
    body = _ok(shop_gw.post("/v1/recommendations", json={
        "recent_item_ids": ["sku-000001"], "k": 3,
        "filter": {"include": {"authors": ["zed quill"]}}}))
    assert _ids(body) == ["sku-flt-1"] and body["matched"] == 1
    _ok(shop_gw.patch("/v1/items/sku-flt-1", json={"available": False}))
    body = _ok(shop_gw.post("/v1/recommendations", json={
        "recent_item_ids": ["sku-000001"], "k": 3,
        "filter": {"include": {"authors": ["zed quill"]}}}))
    assert _ids(body) == [] and body["matched"] == 0 and body["fewer_than_k"] is True
