"""The canonical in-memory form of a recommendation dataset.

Every reader (MovieLens CSV, ml-1m ``.dat``, ml-100k ``u.*``, the project's own format in
:mod:`training.data.generic`) returns a
:class:`Dataset` whose tables have exactly these columns and dtypes:

* ``interactions``: ``user_id`` int64, ``item_id`` int64, ``rating`` float32,
  ``timestamp`` int64 (seconds since the epoch), and an optional ``weight`` float32 (the
  pair's confidence, :mod:`training.data.event_weights`; absent: the rating stands for it).
  One row per (user, item): duplicates keep the latest timestamp.
* ``items``: ``item_id`` int64, ``title`` str, ``year`` Int64 (nullable),
  ``genres`` list[str], ``tags`` list[str], ``overview`` str or None. ``tags`` holds
  only the item's own metadata (for example the tags of an item added at run time);
  user-generated tags are NOT in it: they live in ``tags`` below and reach an item's
  text only through :mod:`training.data.view`, which keeps those of training pairs.
* ``users``: ``user_id`` int64 plus optional ``gender`` str, ``age`` Int64,
  ``occupation`` str columns (present only when the release has them).
* ``links``: ``item_id`` int64, ``imdb_id`` Int64, ``tmdb_id`` Int64, or None.
* ``tags``: user tag events, ``user_id`` int64, ``item_id`` int64, ``tag`` str
  (lower-cased, stripped, non-empty), ``timestamp`` int64; or None when the release
  has none. One row per tag application, so a view can keep the tags of training
  (user, item) pairs created before a cutoff.
* ``negatives``: ``user_id``, ``item_id``, ``timestamp`` int64 and ``event`` str of the
  (user, item) pairs with a negative event (``dislike``, ``hide``), one row each, never in
  ``interactions``; or None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from training.data.ids import IdMap
    from training.data.schema import Attribute

INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
ITEM_COLUMNS = ("item_id", "title", "year", "genres", "tags", "overview")
TAG_COLUMNS = ("user_id", "item_id", "tag", "timestamp")
USER_FEATURE_COLUMNS = ("gender", "age", "occupation")


@dataclass
class Dataset:
    """A recommendation dataset in canonical form.

    Attributes:
        name: Release name, for example ``ml-latest-small`` or ``ml-1m``.
        interactions: Ratings table (see module docstring).
        items: Item catalogue (see module docstring).
        users: One row per user id seen in ``interactions``.
        links: Optional external ids used for text enrichment.
        tags: Optional user tag events (see module docstring); read them only
            through :func:`training.data.view.training_items`.
        source_sha256: sha256 of the source file (zip) or of the folder's files.
        source_path: Where the data was read from.
        info: Free-form notes, for example how many items got an overview.
        id_maps: ``users``/``items`` -> the :class:`training.data.ids.IdMap` that turned the
            files' string ids into these int64 ids (None: the ids were integers already, as
            in MovieLens files).
        item_attributes: Every item attribute of a dataset in the project's format and the
            ``available`` flag, by int64 ``item_id`` (None for MovieLens releases).
        user_attributes: Every user attribute of such a dataset's users table, or None.
        negatives: Pairs with a negative event (see module docstring), or None.
        item_attribute_schema: The declarations (name, type, list) of the columns of
            ``item_attributes``, in schema order (None with ``item_attributes``).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    links: pd.DataFrame | None = None
    tags: pd.DataFrame | None = None
    source_sha256: str = ""
    source_path: str = ""
    info: dict[str, object] = field(default_factory=dict)
    id_maps: dict[str, IdMap] | None = None
    item_attributes: pd.DataFrame | None = None
    user_attributes: pd.DataFrame | None = None
    item_attribute_schema: list[Attribute] | None = None
    negatives: pd.DataFrame | None = None

    @property
    def user_feature_columns(self) -> list[str]:
        """The optional user feature columns this dataset has."""
        return [c for c in USER_FEATURE_COLUMNS if c in self.users.columns]

    def summary(self) -> dict[str, object]:
        """Counts for logs and manifests."""
        return {
            "name": self.name,
            "n_interactions": len(self.interactions),
            "n_users": int(self.interactions["user_id"].nunique()),
            "n_items": len(self.items),
            "n_rated_items": int(self.interactions["item_id"].nunique()),
            "user_features": self.user_feature_columns,
            "items_with_overview": int(self.items["overview"].notna().sum()),
            "n_tag_events": 0 if self.tags is None else len(self.tags),
            "n_negative_pairs": 0 if self.negatives is None else len(self.negatives),
            **self.info,
        }


def keep_latest_pairs(ratings: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep the latest (user, item) row by timestamp (the later row on a tie); rows dropped."""
    users, items = ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy()
    if users.min() >= 0 and items.min() >= 0 and (
            float(users.max()) + 1) * (float(items.max()) + 1) < 2**62:
        key = pd.Series(users * (int(items.max()) + 1) + items)
        ordered = np.sort(key.to_numpy())  # sorting beats hashing 25M keys
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        if not len(repeated):
            return ratings, 0
        dup = key.isin(np.unique(repeated)).to_numpy()
    else:
        dup = ratings.duplicated(["user_id", "item_id"], keep=False).to_numpy()
        if not dup.any():
            return ratings, 0
    sub = ratings.loc[dup, ["user_id", "item_id", "timestamp"]]
    keep = sub.sort_values("timestamp", kind="stable").drop_duplicates(
        ["user_id", "item_id"], keep="last").index
    drop = sub.index.difference(keep).to_numpy()
    mask = np.ones(len(ratings), dtype=bool)
    mask[drop] = False
    return ratings[mask].reset_index(drop=True), len(drop)
