"""Fold exported feedback events (``hybridrec events export``) into a training run.

The gateway stores every ``POST /v1/users/{id}/events`` durably; ``hybridrec events
export`` writes them to parquet (columns of :data:`shared.stores.export.COLUMNS`).
``hybridrec train --events FILE`` reads that file and adds the events to the
dataset's interactions, so the next bundle learns from live feedback:

* ``rating`` events keep their rating;
* other positive events (``view``, ``click``, ``add_to_cart``, ``purchase``, ``like``) carry
  no rating: they become interactions with ``implicit_rating`` (default 4.0, a positive at
  the default ``min_rating`` of 3.0), or are left out when ``implicit_rating`` is None;
* each event adds its weight (:mod:`training.data.event_weights`) to its pair's ``weight``;
* ``dislike`` and ``hide`` events make their pair a negative (``Dataset.negatives``): out of
  the interactions, hidden from the user in the next bundle;
* ids are strings (``hybridrec events export`` writes them as the API took them; older
  exports' integer columns are read as their decimal text) and are mapped onto the
  dataset's ids through its id maps (:mod:`training.data.ids`);
* events on items the catalogue does not hold are left out and counted (fold
  run-time items in first with ``--include-fresh``), so are events of new users whose id
  is not a decimal number when the dataset's user ids are (a numeric id map);
* one row per (user, item), the latest timestamp's rating winning, the weights summed;
* users seen only in events join the users table (no demographic features).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from shared.contracts.errors import DataError
from shared.contracts.events_v1 import NEGATIVE_EVENT_TYPES
from shared.stores.export import COLUMNS
from training.data.dataset import INTERACTION_COLUMNS, Dataset
from training.data.event_weights import EventWeights, event_weight_array, resolve_weights
from training.data.ids import dataset_id_map

DEFAULT_IMPLICIT_RATING = 4.0
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "like", "rating", "dislike", "hide")
"""Every type ``POST /v1/users/{id}/events`` takes (``shared.contracts.events_v1.EventType``)."""


def read_events(path: str | Path) -> pd.DataFrame:
    """The events of one export file, checked.

    Raises:
        DataError: The file is missing, is not parquet, lacks a column, or holds an
            event type or rating that an export cannot contain.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"events file {p} does not exist; write one with `hybridrec events export --out {p}`",
            path=str(p),
        )
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise DataError(
            f"{p} is not a parquet file ({type(exc).__name__}: {exc}); "
            "pass the file `hybridrec events export` wrote",
            path=str(p),
        ) from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{p} lacks the column(s) {missing}; an events export has {list(COLUMNS)}",
            path=str(p),
        )
    bad_type = ~df["type"].isin(EVENT_TYPES)
    if bad_type.any():
        raise DataError(
            f"{p}: {int(bad_type.sum())} event(s) have a type outside {EVENT_TYPES} "
            f"(first: {df.loc[bad_type, 'type'].iloc[0]!r})",
            path=str(p),
        )
    ratings = df["rating"].to_numpy(np.float64)
    bad_rating = (df["type"] == "rating").to_numpy() & ~np.isfinite(ratings)
    if bad_rating.any():
        raise DataError(
            f"{p}: {int(bad_rating.sum())} rating event(s) have no finite rating",
            path=str(p),
        )
    return df


def fold_events(
    ds: Dataset,
    events: pd.DataFrame,
    *,
    implicit_rating: float | None = DEFAULT_IMPLICIT_RATING,
    event_weights: EventWeights | None = None,
) -> Dataset:
    """A copy of ``ds`` whose interactions (and negatives) also hold ``events``.

    Args:
        ds: The dataset in canonical form.
        events: Rows with :data:`shared.stores.export.COLUMNS` (see :func:`read_events`).
        implicit_rating: Rating given to positive events other than ratings; None leaves
            them out.
        event_weights: Event type -> weight (:func:`training.data.event_weights.
            resolve_weights`; None: the defaults).

    Returns:
        The dataset with the events folded in; ``info`` counts what was added and dropped.
    """
    ev = events
    if implicit_rating is None:
        ev = ev[ev["type"].isin(("rating", *NEGATIVE_EVENT_TYPES))]
    weights = resolve_weights(event_weights)
    rating = np.where(
        ev["type"].to_numpy() == "rating",
        ev["rating"].to_numpy(np.float64),
        implicit_rating if implicit_rating is not None else np.nan,
    ).astype(np.float32)
    user_ids = ev["user_id"].astype(str).to_numpy(dtype=object)
    item_ids = ev["item_id"].astype(str).to_numpy(dtype=object)
    items_map = dataset_id_map(ds.id_maps, "items")
    users_map = dataset_id_map(ds.id_maps, "users").extended(user_ids)
    item_ok = items_map.known(item_ids)
    user_ok = users_map.known(user_ids)
    ok = item_ok & user_ok
    rows = pd.DataFrame(
        {
            "user_id": users_map.to_int(user_ids[ok]) if ok.any() else np.zeros(0, np.int64),
            "item_id": items_map.to_int(item_ids[ok]) if ok.any() else np.zeros(0, np.int64),
            "rating": rating[ok],
            "timestamp": ev["timestamp"].to_numpy(np.int64)[ok],
            "weight": event_weight_array(
                ev["type"].to_numpy(dtype=object), ev["rating"].to_numpy(np.float64), weights
            ).astype(np.float32)[ok],
            "type": ev["type"].to_numpy(dtype=object)[ok],
        }
    )
    known = rows["item_id"].isin(ds.items["item_id"])
    dropped_items = int((~item_ok).sum() + (~known).sum())
    dropped_users = int((item_ok & ~user_ok).sum())
    rows = rows[known & ((rows["weight"] > 0) | rows["type"].isin(NEGATIVE_EVENT_TYPES))]
    is_neg = rows["type"].isin(NEGATIVE_EVENT_TYPES).to_numpy()
    negatives = _negatives(ds.negatives, rows[is_neg])
    rows = rows[~is_neg].drop(columns="type")
    before = len(ds.interactions)
    old = ds.interactions[list(INTERACTION_COLUMNS)].assign(
        weight=_weights(ds.interactions, weights)
    )
    inter = pd.concat([old, rows], ignore_index=True).sort_values(
        ["user_id", "item_id", "timestamp"], kind="stable"
    )
    total = inter.groupby(["user_id", "item_id"], sort=False)["weight"].transform("sum")
    inter = (
        inter.assign(weight=total.astype(np.float32))
        .drop_duplicates(["user_id", "item_id"], keep="last")
        .reset_index(drop=True)
    )
    if negatives is not None:  # a negative event wins over the pair's positive ones
        pairs = pd.MultiIndex.from_frame(inter[["user_id", "item_id"]])
        hidden = pairs.isin(pd.MultiIndex.from_frame(negatives[["user_id", "item_id"]]))
        inter = inter[~hidden].reset_index(drop=True)
    seen_users = np.union1d(
        rows["user_id"].unique(), [] if negatives is None else negatives["user_id"].unique()
    ).astype(np.int64)
    new_users = np.setdiff1d(seen_users, ds.users["user_id"].to_numpy())
    users = ds.users
    if len(new_users):
        extra = pd.DataFrame({"user_id": new_users.astype(np.int64)})
        users = pd.concat([ds.users, extra], ignore_index=True)
        for col in ds.user_feature_columns:  # keep the nullable dtypes of the features
            users[col] = users[col].astype(ds.users[col].dtype)
    info = {
        **ds.info,
        "events_folded": len(rows) + int(is_neg.sum()),
        "events_negative": int(is_neg.sum()),
        "events_dropped_unknown_item": dropped_items,
        "events_dropped_user_id": dropped_users,
        "events_skipped_implicit": int(len(events) - len(ev)),
        "events_new_interactions": len(inter) - before,
        "events_new_users": len(new_users),
    }
    id_maps = None if ds.id_maps is None and users_map.kind == "numeric" else {
        **(ds.id_maps or {}), "users": users_map, "items": items_map}
    return dataclasses.replace(
        ds, interactions=inter, users=users, info=info, id_maps=id_maps, negatives=negatives
    )


def _weights(inter: pd.DataFrame, weights: EventWeights) -> np.ndarray:
    """The interactions' confidence: their ``weight``, else their rating's weight."""
    if "weight" in inter.columns:
        return inter["weight"].to_numpy(np.float32)
    from training.data.event_weights import rating_weights

    return rating_weights(inter["rating"].to_numpy(), weights)


def _negatives(known: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame | None:
    """The dataset's negative pairs plus the negative events ``rows`` (latest per pair)."""
    if rows.empty:
        return known
    new = pd.DataFrame({"user_id": rows["user_id"].to_numpy(np.int64),
                        "item_id": rows["item_id"].to_numpy(np.int64),
                        "timestamp": rows["timestamp"].to_numpy(np.int64),
                        "event": rows["type"].astype(str).to_numpy(dtype=object)})
    both = new if known is None else pd.concat([known, new], ignore_index=True)
    return (both.sort_values(["user_id", "item_id", "timestamp"], kind="stable")
            .drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True))
