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
from training.data.schema import Attribute


class FreshRecords(list[dict[str, Any]]):
    """The stored run-time items, plus ``patches``: every item's stored change
    (``PATCH /v1/items/{id}``: attributes, availability) by item id."""

    patches: dict[str, dict[str, Any]]

    def __init__(self, records: list[dict[str, Any]], patches: dict[str, dict[str, Any]]):
        super().__init__(records)
        self.patches = patches


def read_fresh_items(redis_url: str | None, state_dir: str, prefix: str) -> FreshRecords:
    """Every stored run-time item and item change (Redis when a URL is given, else the
    state folder)."""

    async def _read() -> FreshRecords:
        guard = RedisGuard(redis_url, timeout_s=5.0) if redis_url else None
        try:
            store = FreshItemStore(guard, state_dir, prefix=prefix)
            return FreshRecords(await store.all(), await store.patches())
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
    patches = getattr(records, "patches", {}) or {}
    if not rows:
        if patches:
            ds = fold_item_changes(ds, [], patches, ds.id_maps)
        if skipped:
            return dataclasses.replace(ds, info={**ds.info, "fresh_items_skipped_id": skipped})
        return ds
    extra = pd.DataFrame(rows, columns=list(ds.items.columns))
    extra["year"] = extra["year"].astype("Int64")
    items = pd.concat([ds.items, extra.astype({"item_id": "int64"})], ignore_index=True)
    info = {**ds.info, "fresh_items_folded": len(rows), "fresh_items_skipped_id": skipped}
    id_maps = None if ds.id_maps is None and items_map.kind == "numeric" else {
        **(ds.id_maps or {}), "items": items_map}
    new = [(int(ints[j]), r) for j, r in enumerate(records)
           if ok[j] and int(ints[j]) not in known]
    out = dataclasses.replace(ds, items=items, info=info, id_maps=id_maps)
    return fold_item_changes(out, new, patches, id_maps)


def _attribute_table(ds: Dataset) -> tuple[pd.DataFrame, list[Attribute]]:
    """The dataset's attribute table and declarations (a MovieLens release: genres, year)."""
    if ds.item_attributes is not None and ds.item_attribute_schema is not None:
        return ds.item_attributes.copy(), list(ds.item_attribute_schema)
    table = pd.DataFrame({
        "item_id": ds.items["item_id"].to_numpy(np.int64),
        "title": ds.items["title"].to_numpy(),
        "available": True,
        "genres": ds.items["genres"].to_numpy(),
        "year": pd.to_numeric(ds.items["year"], errors="coerce").astype("float64").to_numpy(),
    })
    return table, [Attribute("genres", "categorical", list=True), Attribute("year", "numeric")]


def fold_item_changes(
    ds: Dataset,
    new: list[tuple[int, dict[str, Any]]],
    patches: dict[str, dict[str, Any]],
    id_maps: Any,
) -> Dataset:
    """``ds`` whose attribute table holds the new items' attributes and availability
    (``(int item id, record)``) and every stored change (``patches`` by item id string).

    A MovieLens release gets an attribute table (genres, year, available) only when there
    is something to record; changes of ids the dataset does not know are counted, not kept.
    """
    plain = not patches and all(not r.get("attributes") and r.get("available", True)
                                for _, r in new)
    if plain and ds.item_attributes is None:
        return ds
    table, schema = _attribute_table(ds)
    names = [a.name for a in schema]
    added = []
    for iid, rec in new:
        values = {"genres": list(rec.get("genres") or []), "year": rec.get("year"),
                  **(rec.get("attributes") or {})}
        added.append({"item_id": iid, "title": str(rec["title"]),
                      "available": bool(rec.get("available", True)),
                      **{n: values.get(n) for n in names}})
    if added:
        table = pd.concat([table, pd.DataFrame(added)], ignore_index=True)
    ids = np.asarray(list(patches), dtype=object)
    items_map = dataset_id_map(id_maps, "items")
    known = items_map.known(ids) if len(ids) else np.zeros(0, bool)
    if known.any():
        where = {int(v): j for j, v in enumerate(table["item_id"].to_numpy(np.int64))}
        for sid, iid in zip(ids[known], items_map.to_int(ids[known]), strict=True):
            j = where.get(int(iid))
            if j is None:
                continue
            change = patches[str(sid)]
            if "available" in change:
                table.at[j, "available"] = bool(change["available"])
            for name, value in (change.get("attributes") or {}).items():
                if name in names:
                    table.at[j, name] = value
    info = {**ds.info, "item_changes_folded": int(known.sum()),
            "item_changes_unknown_id": int((~known).sum())}
    return dataclasses.replace(ds, item_attributes=table.reset_index(drop=True),
                               item_attribute_schema=schema, info=info)
