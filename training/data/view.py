"""The time-aware training view: the one place user tags become item text.

A model may only learn from what it could have known when its training data ends. The
view of a dataset for a set of training interactions keeps:

* the training interactions only (never validation or test rows);
* the user tag events (``Dataset.tags``) whose (user, item) pair is a training
  interaction and, when the training data ends at a time, that were written before it:
  before the split's global ``cutoff`` and, for per-user time holdouts
  (``temporal-user``, the serving bundle's validation), before the tagging user's own
  first held-out interaction (``user_cutoffs``);
* every item's own metadata (title, year, genres, overview, the item's own tags).

Items' ``tags`` are then the item's own tags followed by the kept user tags, most
frequent first (ties alphabetical), at most :data:`MAX_TAGS`. An item without training
interactions (a held-out cold item, an item nobody rated) therefore has no user tags.

:func:`training_items` is the only reader of ``Dataset.tags`` for item text; evaluation
(:func:`split_view`, used by ``EvalData.from_split``) and the serving bundle
(:func:`training.catalogue_data.catalogue_eval_data`) both go through it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from training.data.dataset import ITEM_COLUMNS, TAG_COLUMNS, Dataset

MAX_TAGS = 20
"""Most tags kept per item."""


def training_tags(
    tags: pd.DataFrame | None,
    train: pd.DataFrame,
    *,
    cutoff: int | None = None,
    user_cutoffs: pd.Series | None = None,
) -> pd.DataFrame:
    """The tag events a model trained on ``train`` may see.

    Args:
        tags: Tag events (``user_id``, ``item_id``, ``tag``, ``timestamp``) or None.
        train: Training interactions (``user_id``, ``item_id``, ``timestamp``).
        cutoff: Keep only tags with ``timestamp < cutoff`` (None: no global time limit).
        user_cutoffs: user_id -> timestamp: a listed user's tags count only before it
            (the start of that user's held-out data); unlisted users have no limit.

    Returns:
        The kept tag events (canonical tag columns, fresh index).
    """
    if tags is None or tags.empty or train.empty:
        return pd.DataFrame({c: pd.Series(dtype="str" if c == "tag" else "int64")
                             for c in TAG_COLUMNS})
    keep = _pair_in(tags, train)
    ts = tags["timestamp"].to_numpy(np.int64)
    if cutoff is not None:
        keep &= ts < int(cutoff)
    if user_cutoffs is not None and len(user_cutoffs):
        limit = tags["user_id"].map(user_cutoffs).to_numpy(dtype=np.float64, na_value=np.inf)
        keep &= ts < limit
    return tags.loc[keep, list(TAG_COLUMNS)].reset_index(drop=True)


def _pair_in(rows: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    """[len(rows)] bool: the row's (user_id, item_id) is one of ``pairs``'."""
    ru, ri = rows["user_id"].to_numpy(np.int64), rows["item_id"].to_numpy(np.int64)
    pu, pi = pairs["user_id"].to_numpy(np.int64), pairs["item_id"].to_numpy(np.int64)
    lo = min(ru.min(), ri.min(), pu.min(), pi.min())
    width = int(max(ri.max(), pi.max())) - int(lo) + 1
    span = int(max(ru.max(), pu.max())) - int(lo) + 1
    if float(span) * float(width) < 2**62:  # one int64 key per pair, binary search
        known = np.sort((pu - lo) * width + (pi - lo))
        keys = (ru - lo) * width + (ri - lo)
        pos = np.minimum(np.searchsorted(known, keys), len(known) - 1)
        return np.asarray(known[pos] == keys)
    index = pd.MultiIndex.from_arrays([pu, pi])
    return np.asarray(pd.MultiIndex.from_arrays([ru, ri]).isin(index))


def _tag_lists(tags: pd.DataFrame) -> pd.Series:
    """item_id -> up to MAX_TAGS tags, most frequent first, ties alphabetical."""
    if tags.empty:
        return pd.Series(dtype=object)
    counts = tags.groupby(["item_id", "tag"], sort=False).size().reset_index(name="n")
    counts = counts.sort_values(["item_id", "n", "tag"], ascending=[True, False, True])
    top = counts.groupby("item_id", sort=False).head(MAX_TAGS)
    ids, starts = np.unique(top["item_id"].to_numpy(), return_index=True)
    chunks = np.split(top["tag"].to_numpy(dtype=object), starts[1:])
    return pd.Series([c.tolist() for c in chunks], index=ids, dtype=object)


def training_items(
    ds: Dataset,
    train: pd.DataFrame,
    *,
    cutoff: int | None = None,
    user_cutoffs: pd.Series | None = None,
) -> pd.DataFrame:
    """``ds.items`` whose ``tags`` hold the item's own tags plus the training pairs' user tags.

    Args:
        ds: The dataset (items and tag events).
        train: Training interactions.
        cutoff: See :func:`training_tags`.
        user_cutoffs: See :func:`training_tags`.

    Returns:
        A copy of the canonical items table (same rows and order).
    """
    kept = training_tags(ds.tags, train, cutoff=cutoff, user_cutoffs=user_cutoffs)
    return _with_user_tags(ds.items, kept)


def _with_user_tags(table: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose ``tags`` are its own tags then the ``kept`` events' tags."""
    user_tags = _tag_lists(kept)
    items = table.copy()
    by_item = items["item_id"].map(user_tags)
    merged = []
    for own, extra in zip(items["tags"], by_item, strict=True):
        base = [str(t) for t in own] if isinstance(own, list | tuple | np.ndarray) else []
        more = [t for t in extra if t not in base] if isinstance(extra, list) else []
        merged.append((base + more)[:MAX_TAGS])
    items["tags"] = pd.Series(merged, index=items.index, dtype=object)
    return items[list(ITEM_COLUMNS) + [c for c in items.columns if c not in ITEM_COLUMNS]]


def split_view(ds: Dataset, split: Any) -> Dataset:
    """The dataset as a model trained on ``split`` may see it.

    Args:
        ds: The dataset the split was made from.
        split: A :class:`training.splits.Split` (``train``, ``kind``, ``cutoff``,
            ``user_cutoffs``).

    Returns:
        A Dataset whose ``interactions`` are the training interactions, whose ``tags``
        are the kept tag events and whose items carry only those as user tags.
        ``info["view"]`` records the rule applied.
    """
    cutoff = split.cutoff
    user_cutoffs = split.user_cutoffs
    kept = training_tags(ds.tags, split.train, cutoff=cutoff, user_cutoffs=user_cutoffs)
    items = _with_user_tags(ds.items, kept)
    info = {**ds.info, "view": {"split": split.kind, "cutoff": cutoff,
                                "per_user_cutoff": user_cutoffs is not None,
                                "tag_events_kept": len(kept),
                                "tag_events_total": 0 if ds.tags is None else len(ds.tags)}}
    return dataclasses.replace(ds, interactions=split.train, items=items, tags=kept, info=info)
