"""Run-time items are folded into the next training run's catalogue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from shared.stores.fresh_items import FreshItemStore, encode_vector
from shared.stores.redis_conn import RedisGuard
from training.data import load_dataset
from training.fresh_items import fold_fresh_items, read_fresh_items


def _store_two(redis_url: str | None, state: Path, prefix: str) -> list[int]:
    async def run() -> list[int]:
        guard = RedisGuard(redis_url, timeout_s=2.0) if redis_url else None
        store = FreshItemStore(guard, state, prefix=prefix)
        ids = []
        for title in ("Space Pirates", "Deep Sea Choir"):
            rec = {
                "title": title,
                "genres": ["Sci-Fi"],
                "year": 2026,
                "overview": "new",
                "tags": [],
                "content": encode_vector(np.ones(4)),
                "vector": encode_vector(np.ones(2)),
            }
            added = await store.add(rec, 200_000, lambda _: False)
            assert isinstance(added["item_id"], str)
            ids.append(int(added["item_id"]))  # assigned ids are decimal: MovieLens keeps them
        if guard is not None:
            await guard.close()
        return ids

    return asyncio.run(run())


def test_items_from_redis_join_the_catalogue(
    bundled_zip: Path, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    ids = _store_two(redis_url, tmp_path, redis_prefix)
    ds = load_dataset(bundled_zip)
    folded = fold_fresh_items(ds, read_fresh_items(redis_url, str(tmp_path), redis_prefix))
    assert len(folded.items) == len(ds.items) + 2
    new = folded.items[folded.items["item_id"].isin(ids)]
    assert sorted(new["title"]) == ["Deep Sea Choir", "Space Pirates"]
    assert new["year"].tolist() == [2026, 2026] and folded.info["fresh_items_folded"] == 2
    # Folding twice adds nothing: ids already in the catalogue are skipped.
    again = fold_fresh_items(folded, read_fresh_items(redis_url, str(tmp_path), redis_prefix))
    assert len(again.items) == len(folded.items)


def test_items_from_the_state_folder_without_redis(bundled_zip: Path, tmp_path: Path) -> None:
    ids = _store_two(None, tmp_path, "unused")
    folded = fold_fresh_items(load_dataset(bundled_zip), read_fresh_items(None, str(tmp_path), "x"))
    assert set(ids) <= set(folded.items["item_id"])


def test_own_string_ids_join_a_dense_catalogue_and_skip_a_numeric_one(
    bundled_zip: Path, tmp_path: Path
) -> None:
    from tests.support.bookshop import write_bookshop

    records = [{"item_id": "sku-new:1", "title": "A New Book", "genres": ["poetry"],
                "year": 2026, "overview": None, "tags": []},
               {"item_id": "sku-000001", "title": "Already There", "genres": []}]
    shop = load_dataset(str(write_bookshop(tmp_path / "shop", n_items=30, n_users=10)))
    folded = fold_fresh_items(shop, records)
    assert folded.id_maps is not None and folded.info["fresh_items_folded"] == 1
    new_int = int(folded.id_maps["items"].to_int(["sku-new:1"])[0])
    assert new_int == len(shop.items) + 1
    row = folded.items[folded.items["item_id"] == new_int]
    assert row["title"].tolist() == ["A New Book"]
    # MovieLens ids are numbers: an item with a non-decimal id cannot join; it is counted
    ml = fold_fresh_items(load_dataset(bundled_zip), records[:1])
    assert ml.info["fresh_items_skipped_id"] == 1 and "fresh_items_folded" not in ml.info


def test_item_changes_and_new_items_attributes_reach_the_bundle_columns(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """PATCH /v1/items changes (stored in Redis) and new items' attributes are folded into
    the next run: the bundle's attribute columns and ``available`` show them."""
    from tests.support.bookshop import write_bookshop
    from training.item_attributes import attribute_columns

    shop = load_dataset(str(write_bookshop(tmp_path / "shop", n_items=30, n_users=10)))

    async def store() -> None:
        guard = RedisGuard(redis_url, timeout_s=2.0)
        st = FreshItemStore(guard, tmp_path, prefix=redis_prefix)
        await st.add({"item_id": "sku-new:7", "title": "Atlas", "genres": [],
                      "attributes": {"categories": ["travel"], "price": 3.5},
                      "available": False, "content": encode_vector(np.ones(4)),
                      "vector": encode_vector(np.ones(2))}, 1, lambda _: False)
        await st.patch("sku-000002", {"available": False})
        await st.patch("sku-000003", {"attributes": {"price": 99.0, "authors": ["Ann Lee"]}})
        await st.patch("sku-000003", {"attributes": {"categories": ["poetry"]}})
        await st.patch("sku-gone", {"available": False})
        await guard.close()

    asyncio.run(store())
    folded = fold_fresh_items(shop, read_fresh_items(redis_url, str(tmp_path), redis_prefix))
    assert folded.info["item_changes_folded"] == 2
    assert folded.info["item_changes_unknown_id"] == 1
    cols, _ = attribute_columns(folded, folded.items)
    ids = folded.id_maps["items"].to_str(folded.items["item_id"]).tolist()  # type: ignore[index]
    row = {iid: j for j, iid in enumerate(ids)}
    assert not cols["available"].iat[row["sku-000002"]]
    assert cols["attr:price"].iat[row["sku-000003"]] == 99.0
    assert list(cols["attr:authors"].iat[row["sku-000003"]]) == ["Ann Lee"]
    assert list(cols["attr:categories"].iat[row["sku-000003"]]) == ["poetry"]
    assert cols["attr:price"].iat[row["sku-000001"]] == shop.item_attributes["price"].iat[0]  # type: ignore[index]
    new = row["sku-new:7"]
    assert not cols["available"].iat[new] and cols["attr:price"].iat[new] == 3.5
    assert list(cols["attr:categories"].iat[new]) == ["travel"]


def test_movielens_gets_an_attribute_table_only_for_changes(
    bundled_zip: Path, tmp_path: Path
) -> None:
    from training.fresh_items import FreshRecords
    from training.item_attributes import attribute_columns

    ml = load_dataset(bundled_zip)
    same = fold_fresh_items(ml, FreshRecords([], {}))
    assert same.item_attributes is None
    first = str(ml.items["item_id"].iat[0])
    changed = fold_fresh_items(ml, FreshRecords([], {first: {"available": False,
                                                              "attributes": {"year": 1901}}}))
    cols, decls = attribute_columns(changed, changed.items)
    assert [d["name"] for d in decls] == ["genres", "year"]
    assert not cols["available"].iat[0] and cols["available"].iloc[1:].all()
    assert cols["attr:year"].iat[0] == 1901
    assert list(cols["attr:genres"].iat[1]) == list(ml.items["genres"].iat[1])
