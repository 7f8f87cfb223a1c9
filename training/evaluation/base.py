"""The evaluation contract: :class:`EvalData` (indexed split) and the :class:`Recommender` protocol.

Every model evaluated offline – baselines, the deep collaborative models, the
two-stage pipeline – implements :class:`Recommender` and reads its training
data from :class:`EvalData`. Users and items are addressed by position
(``user_idx``, ``item_idx``) into ``user_ids`` / ``item_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from training.data.dataset import ITEM_COLUMNS, Dataset
from training.data.view import split_view
from training.splits import Split


@dataclass
class EvalData:
    """A split indexed for evaluation.

    Attributes:
        user_ids: [n_users] int64 raw user ids, sorted; position = ``user_idx``.
            Every user in any part of the split.
        item_ids: [n_items] int64 raw item ids, sorted ascending; position =
            ``item_idx``. Every item in any part of the split (train, valid or test).
        train: [n_users, n_items] float32 CSR, 1.0 per train interaction.
        valid: [n_users, n_items] float32 CSR, 1.0 per validation interaction.
        test: [n_users, n_items] float32 CSR, 1.0 per test interaction.
        train_interactions: Train rows with ``user_id``, ``item_id``, ``rating``,
            ``timestamp``, ``user_idx``, ``item_idx``.
        items: Canonical item rows aligned to ``item_idx`` (row i <-> item_ids[i]),
            from the split's training view (user tags of training pairs only).
        users: Canonical user rows aligned to ``user_idx``.
        candidate_items: item_idx the test evaluation ranks (cold-items: the
            held-out items); None = all items.
        split: Split kind.
        seed: Split seed.
        dataset_name: Dataset release name.
        item_attributes: The dataset's item attribute columns aligned to ``item_idx``
            (datasets in the project's format), or None.
        user_attributes: Its user attribute columns aligned to ``user_idx``, or None.
        attribute_types: ``{"items": {name: {"type", "list"}}, "users": {...}, "genres_from",
            "year_from"}`` (:func:`training.attribute_features.attribute_types`).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    train_interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    candidate_items: np.ndarray | None
    split: str
    seed: int
    dataset_name: str
    item_attributes: pd.DataFrame | None = None
    user_attributes: pd.DataFrame | None = None
    attribute_types: dict[str, Any] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        """Number of users (rows of the matrices)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items (columns of the matrices)."""
        return len(self.item_ids)

    @classmethod
    def from_split(cls, ds: Dataset, split: Split) -> EvalData:
        """Index a split: id maps, binary CSR matrices and aligned item/user tables.

        Args:
            ds: The dataset the split was made from (for the item/user tables).
            split: The split.

        Returns:
            The :class:`EvalData`.
        """
        parts = (split.train, split.valid, split.test)
        user_ids = np.unique(np.concatenate([p["user_id"].to_numpy(np.int64) for p in parts]))
        item_ids = np.unique(np.concatenate([p["item_id"].to_numpy(np.int64) for p in parts]))
        shape = (len(user_ids), len(item_ids))

        def index(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            u = np.searchsorted(user_ids, df["user_id"].to_numpy(np.int64))
            i = np.searchsorted(item_ids, df["item_id"].to_numpy(np.int64))
            return u.astype(np.int64), i.astype(np.int64)

        def matrix(df: pd.DataFrame) -> sp.csr_matrix:
            u, i = index(df)
            m = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=shape)
            m.sum_duplicates()
            m.data[:] = 1.0
            return m

        tu, ti = index(split.train)
        train_inter = split.train.reset_index(drop=True).assign(user_idx=tu, item_idx=ti)
        cand = None
        if split.cold_items is not None:
            cand = np.searchsorted(item_ids, np.intersect1d(split.cold_items, item_ids))
            cand = cand.astype(np.int64)
        return cls(
            user_ids=user_ids,
            item_ids=item_ids,
            train=matrix(split.train),
            valid=matrix(split.valid),
            test=matrix(split.test),
            train_interactions=train_inter,
            items=_align_items(split_view(ds, split).items, item_ids),
            users=_align_users(ds.users, user_ids),
            candidate_items=cand,
            split=split.kind,
            seed=split.seed,
            dataset_name=ds.name,
            **attribute_tables(ds, item_ids, user_ids),
        )


def attribute_tables(ds: Dataset, item_ids: np.ndarray, user_ids: np.ndarray) -> dict[str, Any]:
    """The dataset's attribute tables aligned to ``item_ids`` / ``user_ids`` (rows of absent
    ids are missing values), and their types: EvalData's attribute fields."""
    def align(table: pd.DataFrame | None, key: str, ids: np.ndarray) -> pd.DataFrame | None:
        if table is None or key not in table.columns:
            return None
        return (table.drop_duplicates(key, keep="first").set_index(key)
                .reindex(pd.Index(ids, name=key)).reset_index())

    from training.attribute_features import attribute_types

    return {"item_attributes": align(ds.item_attributes, "item_id", item_ids),
            "user_attributes": align(ds.user_attributes, "user_id", user_ids),
            "attribute_types": attribute_types(ds)}


def _align_items(items: pd.DataFrame, item_ids: np.ndarray) -> pd.DataFrame:
    """Item rows in ``item_ids`` order; items missing from the catalogue get empty fields."""
    table = items.drop_duplicates("item_id", keep="first").set_index("item_id")
    out = table.reindex(pd.Index(item_ids, name="item_id"))
    missing = ~pd.Index(item_ids).isin(table.index)
    if missing.any():
        if "title" in out.columns:
            out.loc[missing, "title"] = ""
        for col in ("genres", "tags"):
            if col in out.columns:
                out[col] = [v if isinstance(v, list) else [] for v in out[col]]
    out = out.reset_index()
    cols = [c for c in ITEM_COLUMNS if c in out.columns]
    return out[cols + [c for c in out.columns if c not in cols]]


def _align_users(users: pd.DataFrame, user_ids: np.ndarray) -> pd.DataFrame:
    """User rows in ``user_ids`` order; users missing from the table get nulls."""
    if "user_id" not in users.columns:
        return pd.DataFrame({"user_id": user_ids})
    table = users.drop_duplicates("user_id", keep="first").set_index("user_id")
    return table.reindex(pd.Index(user_ids, name="user_id")).reset_index()


@runtime_checkable
class Recommender(Protocol):
    """What the harness needs from a model.

    A model may also expose ``hyperparameters: dict`` (chosen values, reported).
    """

    name: str

    def fit(self, data: EvalData) -> None:
        """Train on ``data.train`` (may tune on ``data.valid``; must never read ``data.test``)."""
        ...

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores for every item.

        Args:
            user_idx: [B] int64 user positions.

        Returns:
            [B, n_items] float32, higher = better. The harness masks seen items
            and non-candidates itself.
        """
        ...
