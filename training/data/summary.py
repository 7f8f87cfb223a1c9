"""The summary ``hybridrec data validate`` prints: counts, time range, sparsity, attributes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.data.columns import codes, duplicated_rows, is_in

if TYPE_CHECKING:
    from training.data.validate import CanonicalTables


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(int(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _attribute_summary(frame: pd.DataFrame, attrs: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in attrs:
        s = frame[a.name]
        entry: dict[str, Any] = {"type": a.type, **({"list": True} if a.list else {})}
        if a.type == "numeric":
            vals = s.to_numpy(dtype=np.float64)
            known = vals[~np.isnan(vals)]
            entry.update(missing=int(np.isnan(vals).sum()),
                         min=float(known.min()) if len(known) else None,
                         max=float(known.max()) if len(known) else None)
        elif a.type == "categorical" and a.list:
            flat = s.explode()
            flat = flat[flat.notna()]
            entry.update(distinct=int(flat.nunique()), empty=int((s.map(len) == 0).sum()),
                         top=flat.value_counts().head(5).to_dict())
        elif a.type == "categorical":
            known = s[s != ""]
            entry.update(distinct=int(known.nunique()), missing=int((s == "").sum()),
                         top=known.value_counts().head(5).to_dict())
        else:
            entry.update(missing=int((s == "").sum()), distinct=int(s.nunique()))
        out[a.name] = entry
    return out


def summarize(t: CanonicalTables) -> dict[str, Any]:
    """Counts, time range, sparsity and attribute cardinalities of valid-typed tables."""
    inter = t.interactions
    users, items = codes(inter["user_id"]), codes(inter["item_id"])
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = len(t.items)
    pairs = int((~duplicated_rows(users, items)).sum())
    ts = inter["timestamp"].to_numpy()
    value = inter["value"].to_numpy(dtype=np.float64)
    rated = value[~np.isnan(value)]
    return {
        "name": t.name,
        "files": {k: str(v) for k, v in t.files.items()},
        "interactions": {
            "rows": len(inter),
            "users": n_users,
            "items": int(items.max()) + 1 if len(items) else 0,
            "user_item_pairs": pairs,
            "events": inter["event"].value_counts().to_dict(),
            "time_range": [_iso(ts.min()), _iso(ts.max())] if len(ts) else None,
            "value_range": [float(rated.min()), float(rated.max())] if len(rated) else None,
            "sparsity": round(1.0 - pairs / max(1, n_users * n_items), 6),
            "per_user_median": float(np.median(np.bincount(users))) if len(users) else 0.0,
        },
        "items": {
            "rows": n_items,
            "unavailable": int((~t.items["available"]).sum()),
            "without_interactions": int((~is_in(t.items["item_id"], inter["item_id"])).sum()),
            "attributes": _attribute_summary(t.items, t.attributes.get("items", [])),
        },
        "users": None if t.users is None else {
            "rows": len(t.users),
            "without_interactions": int((~is_in(t.users["user_id"], inter["user_id"])).sum()),
            "attributes": _attribute_summary(t.users, t.attributes.get("users", [])),
        },
        "tags": None if t.tags is None else {"rows": len(t.tags)},
    }
