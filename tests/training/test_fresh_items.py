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
            ids.append(int((await store.add(rec, min_id=200_000))["item_id"]))
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
