"""The bundle's users: every user with an interaction in the training data.

The models learn from positive interactions only (``rating >= min_rating``, or any positive
event), so :class:`~training.evaluation.base.EvalData` holds only users with one. A user whose
every rating is low, or who only hid or disliked items, still has training interactions and
is a *known* user: the bundle lists them after the models' users, with an empty history
(retrieval answers them from the query tower and popularity, never with a 404), every item
they interacted with as seen, and their hidden items (:data:`~shared.contracts.bundle_layout.
HIDDEN_ITEMS`) excluded from every answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.data.dataset import Dataset
from training.evaluation.base import EvalData


def bundle_users(ds: Dataset, edata: EvalData) -> pd.DataFrame:
    """``edata.users`` (the models' users, in their order), then the dataset's other users
    with interactions (low ratings only, negative events only), ascending by int64 id; the
    columns of ``edata.users`` (their attributes from ``ds.users`` when it has them)."""
    ids = [ds.interactions["user_id"].to_numpy(np.int64)]
    if ds.negatives is not None:
        ids.append(ds.negatives["user_id"].to_numpy(np.int64))
    extra = np.setdiff1d(np.concatenate(ids), edata.user_ids)
    if not len(extra):
        return edata.users.copy()
    attrs = ds.users.drop_duplicates("user_id").set_index("user_id")
    more = attrs.reindex(extra).reset_index().rename(columns={"index": "user_id"})
    more = more.reindex(columns=edata.users.columns)
    for col in edata.users.columns:  # keep the nullable dtypes of the features
        more[col] = more[col].astype(edata.users[col].dtype)
    return pd.concat([edata.users, more], ignore_index=True)


def user_item_csr(
    pairs: pd.DataFrame | None, user_ids: np.ndarray, item_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The items of each user's ``pairs`` as CSR arrays over the rows ``user_ids``.

    Args:
        pairs: ``user_id``, ``item_id`` int64 (None: no pairs).
        user_ids: int64 [n_users] the rows (any order, unique).
        item_ids: int64 [n_items] sorted, the catalogue order (item positions).

    Returns:
        ``(indptr int64 [n_users + 1], item positions int32)``, each row sorted and unique;
        pairs of users or items outside the tables are left out.
    """
    if pairs is None or pairs.empty:
        return np.zeros(len(user_ids) + 1, np.int64), np.zeros(0, np.int32)
    u = pd.Index(np.asarray(user_ids, np.int64)).get_indexer(pairs["user_id"].to_numpy(np.int64))
    want = pairs["item_id"].to_numpy(np.int64)
    i = np.searchsorted(item_ids, want)
    i_c = np.minimum(i, len(item_ids) - 1)
    ok = (u >= 0) & (i < len(item_ids)) & (item_ids[i_c] == want)
    keys = np.unique(u[ok].astype(np.int64) * len(item_ids) + i[ok])
    rows, items = np.divmod(keys, len(item_ids))
    indptr = np.zeros(len(user_ids) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(user_ids)), out=indptr[1:])
    return indptr, items.astype(np.int32)


def all_pairs(ds: Dataset) -> pd.DataFrame:
    """Every (user, item) pair of the data: interactions (any rating) and negative events."""
    parts = [ds.interactions[["user_id", "item_id"]]]
    if ds.negatives is not None:
        parts.append(ds.negatives[["user_id", "item_id"]])
    return pd.concat(parts, ignore_index=True)
