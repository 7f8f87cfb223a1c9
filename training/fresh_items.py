"""Fold items added at run time (``POST /v1/items``) into the next training run.

The services keep new items in a durable store beside the immutable Annoy
indexes; ``hybridrec train --include-fresh`` reads that store and adds the items
to the catalogue, so the next bundle embeds and indexes them like any other item
(the services then stop treating them as fresh).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from shared.stores.fresh_items import FreshItemStore
from shared.stores.redis_conn import RedisGuard
from training.data.dataset import Dataset
from training.data.ids import dataset_id_map


def read_fresh_items(redis_url: str | None, state_dir: str, prefix: str) -> list[dict[str, Any]]:
    """Every stored run-time item (Redis when a URL is given, else the state folder)."""

    async def _read() -> list[dict[str, Any]]:
        guard = RedisGuard(redis_url, timeout_s=5.0) if redis_url else None
        try:
            return await FreshItemStore(guard, state_dir, prefix=prefix).all()
        finally:
            if guard is not None:
                await guard.close()

    return asyncio.run(_read())


def fold_fresh_items(ds: Dataset, records: list[dict[str, Any]]) -> Dataset:
    """A copy of ``ds`` whose items table also holds the records not already in it.

    Record ids are strings; they are mapped onto the dataset's item ids through its id map
    (:mod:`training.data.ids`): a dense map gives new ids the next numbers, a numeric one
    (MovieLens) takes only decimal ids: records with other ids are left out and counted.
    """
    ids = np.asarray([str(r["item_id"]) for r in records], dtype=object)
    items_map = dataset_id_map(ds.id_maps, "items").extended(ids)
    ok = items_map.known(ids) if len(ids) else np.zeros(0, bool)
    ints = np.zeros(len(ids), np.int64)
    if ok.any():
        ints[ok] = items_map.to_int(ids[ok])
    known = set(ds.items["item_id"].tolist())
    rows = [
        {
            "item_id": int(ints[j]),
            "title": str(r["title"]),
            "year": r.get("year"),
            "genres": list(r.get("genres") or []),
            "tags": list(r.get("tags") or []),
            "overview": r.get("overview"),
        }
        for j, r in enumerate(records)
        if ok[j] and int(ints[j]) not in known
    ]
    skipped = int((~ok).sum())
    if not rows:
        if skipped:
            return dataclasses.replace(ds, info={**ds.info, "fresh_items_skipped_id": skipped})
        return ds
    extra = pd.DataFrame(rows, columns=list(ds.items.columns))
    extra["year"] = extra["year"].astype("Int64")
    items = pd.concat([ds.items, extra.astype({"item_id": "int64"})], ignore_index=True)
    info = {**ds.info, "fresh_items_folded": len(rows), "fresh_items_skipped_id": skipped}
    id_maps = None if ds.id_maps is None and items_map.kind == "numeric" else {
        **(ds.id_maps or {}), "items": items_map}
    return dataclasses.replace(ds, items=items, info=info, id_maps=id_maps)
