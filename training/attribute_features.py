"""Which attributes of a dataset feed the models, and the encoder fitted on a training split.

A dataset in the project's format (docs/own-data.md) keeps every item and user attribute
(``Dataset.item_attributes`` / ``user_attributes``). The models already read two of them
another way: the ``genres`` multi-hot and genre profile (from the attribute named ``genres``,
else the first categorical one) and the ``year`` bucket; and the gender / age / occupation
user features when a users table has all three. Every *other* categorical and numeric
attribute goes through :class:`shared.model.attributes.AttributeEncoder`, fitted here on
an :class:`~training.evaluation.base.EvalData`'s training interactions only (vocabularies
and quantiles never see validation or test rows). Text attributes are joined into the
item's ``overview`` by the reader and reach the BERT item text; external ids are never
features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shared.model.attributes import AttributeEncoder
from training.data.dataset import USER_FEATURE_COLUMNS, Dataset
from training.data.schema import TEXT_NAMES

_FIXED = {"item_id", "user_id", "title", "available"}


def _infer(table: pd.DataFrame, side: str) -> dict[str, dict[str, Any]]:
    """Attribute types of a table's columns from their values (when no schema is at hand):
    ``*_id`` columns are external ids, items' ``description``/``overview``/... text, number
    columns numeric, list columns categorical lists, the rest categorical."""
    out: dict[str, dict[str, Any]] = {}
    for name in table.columns:
        if name in _FIXED:
            continue
        col = table[name]
        if name.endswith("_id") or name == "id":
            kind, is_list = "external_id", False
        elif side == "items" and name in TEXT_NAMES:
            kind, is_list = "text", False
        elif pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(
                col.dtype):
            kind, is_list = "numeric", False
        else:
            is_list = any(isinstance(v, list | tuple | np.ndarray) for v in col.dropna().head(100))
            kind = "categorical"
        out[str(name)] = {"type": kind, "list": is_list}
    return out


def attribute_types(ds: Dataset) -> dict[str, Any]:
    """``{"items": {name: {"type", "list"}}, "users": {...}, "genres_from", "year_from"}``
    of a dataset (empty tables for MovieLens releases, which have no attribute tables)."""
    items: dict[str, dict[str, Any]] = {}
    schema = getattr(ds, "item_attribute_schema", None)
    if schema:
        items = {a.name: {"type": a.type, "list": bool(a.list)} for a in schema}
    elif ds.item_attributes is not None:
        items = _infer(ds.item_attributes, "items")
    users = {} if ds.user_attributes is None else _infer(ds.user_attributes, "users")
    genres = "genres" if items.get("genres", {}).get("type") == "categorical" else next(
        (n for n, a in items.items() if a["type"] == "categorical"), None)
    year = "year" if items.get("year", {}).get("type") == "numeric" else None
    return {"items": items, "users": users, "genres_from": genres, "year_from": year}


def fit_attribute_encoder(data: Any) -> AttributeEncoder | None:
    """The attribute encoder of an EvalData, fitted on its training interactions; None when
    no attribute beyond genres, year and gender/age/occupation exists."""
    types = getattr(data, "attribute_types", None) or {}
    item_table = getattr(data, "item_attributes", None)
    user_table = getattr(data, "user_attributes", None)
    if not types or (item_table is None and user_table is None):
        return None
    inter = data.train_interactions
    legacy_users = [c for c in USER_FEATURE_COLUMNS if c in data.users.columns]
    enc = AttributeEncoder.fit(
        item_table=item_table, item_types=types.get("items", {}),
        train_item_idx=inter["item_idx"].to_numpy(np.int64),
        user_table=user_table, user_types=types.get("users", {}),
        train_user_idx=inter["user_idx"].to_numpy(np.int64),
        skip_items=[n for n in (types.get("genres_from"), types.get("year_from")) if n],
        skip_users=legacy_users)
    return None if enc.empty else enc
