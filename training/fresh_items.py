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

import pandas as pd

from shared.stores.fresh_items import FreshItemStore
from shared.stores.redis_conn import RedisGuard
from training.data.dataset import Dataset


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
    """A copy of ``ds`` whose items table also holds the records not already in it."""
    known = set(ds.items["item_id"].tolist())
    rows = [
        {
            "item_id": int(r["item_id"]),
            "title": str(r["title"]),
            "year": r.get("year"),
            "genres": list(r.get("genres") or []),
            "tags": list(r.get("tags") or []),
            "overview": r.get("overview"),
        }
        for r in records
        if int(r["item_id"]) not in known
    ]
    if not rows:
        return ds
    extra = pd.DataFrame(rows, columns=list(ds.items.columns))
    extra["year"] = extra["year"].astype("Int64")
    items = pd.concat([ds.items, extra.astype({"item_id": "int64"})], ignore_index=True)
    info = {**ds.info, "fresh_items_folded": len(rows)}
    return dataclasses.replace(ds, items=items, info=info)
