"""Every item attribute and the ``available`` flag, as bundle columns (issue 19).

The bundle's ``items.parquet`` carries, beside the fixed columns, one column per item
attribute named ``attr:<name>`` (:data:`shared.contracts.bundle_layout.ATTRIBUTE_PREFIX`):
categorical lists as list columns, single categoricals as text (None when missing),
numeric as float64 (NaN when missing), text and external ids as text; and the bool column
``available``. The declarations (name, type, list) go to the manifest's
``components.item_attributes``; serving reads both through
:meth:`shared.model.catalogue.Catalogue.from_frame`.

A dataset in the project's format has its own declarations
(``Dataset.item_attribute_schema``); a MovieLens release gets ``genres`` (categorical list)
and ``year`` (numeric) from its items table, every item available.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from shared.contracts import bundle_layout as L
from shared.model.cells import is_missing, list_cell
from training.data.dataset import Dataset

MOVIELENS_ATTRIBUTES: list[dict[str, Any]] = [
    {"name": "genres", "type": "categorical", "list": True},
    {"name": "year", "type": "numeric", "list": False},
]


def attribute_declarations(ds: Dataset) -> list[dict[str, Any]]:
    """``[{name, type, list}]`` of the dataset's item attributes, in schema order."""
    if ds.item_attributes is None or ds.item_attribute_schema is None:
        return [dict(a) for a in MOVIELENS_ATTRIBUTES]
    return [{"name": a.name, "type": a.type, "list": bool(a.list)}
            for a in ds.item_attribute_schema]


def _cells(values: list[Any], decl: dict[str, Any]) -> Any:
    """One attribute's values in the bundle's cell form."""
    if decl["type"] == "numeric":
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").astype(
            "float64").to_numpy()
    if decl["type"] == "categorical" and decl["list"]:
        return pd.Series([list_cell(v) for v in values], dtype=object).to_numpy()
    return pd.Series([None if is_missing(v) or str(v) == "" else str(v) for v in values],
                     dtype=object).to_numpy()


def attribute_columns(ds: Dataset, items: pd.DataFrame) -> tuple[pd.DataFrame,
                                                                  list[dict[str, Any]]]:
    """The ``attr:*`` and ``available`` columns for the rows of ``items``.

    Args:
        ds: The dataset (its ``item_attributes`` by int64 ``item_id``).
        items: The bundle's items in bundle order, int64 ``item_id`` plus ``genres`` and
            ``year`` (the MovieLens attributes); items missing from ``ds.item_attributes``
            (folded run-time items) get missing values and ``available`` True.

    Returns:
        ``(columns frame aligned with items, declarations)``.
    """
    decls = attribute_declarations(ds)
    n = len(items)
    out: dict[str, Any] = {}
    if ds.item_attributes is None or ds.item_attribute_schema is None:
        src = items
        available = np.ones(n, dtype=bool)
    else:
        attrs = ds.item_attributes.drop_duplicates("item_id").set_index("item_id")
        src = attrs.reindex(items["item_id"].to_numpy(np.int64))
        avail = src["available"] if "available" in src.columns else pd.Series(True, src.index)
        available = np.asarray(avail.astype(object).where(avail.notna(), True), dtype=bool)
    for decl in decls:
        col = src[decl["name"]].tolist() if decl["name"] in src.columns else [None] * n
        out[L.ATTRIBUTE_PREFIX + decl["name"]] = _cells(col, decl)
    out[L.AVAILABLE] = available
    return pd.DataFrame(out, index=items.index), decls


def row_attributes(columns: pd.DataFrame, decls: list[dict[str, Any]], row: int) -> dict[str, Any]:
    """The categorical and numeric attributes of one row of :func:`attribute_columns`, as the
    API shows them (``popular.json``, the gateway's fallback, filters on them)."""
    out: dict[str, Any] = {}
    for decl in decls:
        if decl["type"] not in ("categorical", "numeric"):
            continue
        v = columns[L.ATTRIBUTE_PREFIX + decl["name"]].iat[row]
        if decl["type"] == "numeric":
            out[decl["name"]] = None if is_missing(v) or np.isnan(v) else float(v)
        elif decl["list"]:
            out[decl["name"]] = list_cell(v)
        else:
            out[decl["name"]] = None if is_missing(v) else str(v)
    return out
