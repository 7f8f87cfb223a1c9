"""The training view of a whole dataset for serving: every item, every user.

Evaluation splits index only the items that appear in a split; a serving bundle
needs the whole catalogue (items nobody rated yet get content-only vectors). This
module builds the same :class:`~training.evaluation.base.EvalData` structure over
the full catalogue, with a per-user temporal holdout as validation (for early
stopping and ranker selection) and an empty test part. Item text follows the rule of
evaluation (:mod:`training.data.view`): user tags count only for training (user, item)
pairs, written before the tagging user's first validation interaction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shared.contracts.errors import DataError
from training.data.dataset import Dataset
from training.data.view import training_items
from training.evaluation.base import EvalData, attribute_tables


def serving_interactions(ds: Dataset, min_rating: float | None) -> pd.DataFrame:
    """Positive interactions used to train the serving models (latest per pair)."""
    inter = ds.interactions
    if min_rating is not None:
        inter = inter[inter["rating"] >= min_rating]
    if inter.empty:
        raise DataError(
            f"no interactions with rating >= {min_rating} in {ds.name}; "
            "lower --config min_rating or check the data",
            path=ds.source_path,
        )
    return inter.reset_index(drop=True)


def temporal_holdout(inter: pd.DataFrame, frac: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, the latest ``frac`` of interactions (at least one kept in train)."""
    df = inter.sort_values(["user_id", "timestamp", "item_id"], kind="stable").reset_index(
        drop=True
    )
    pos = df.groupby("user_id").cumcount().to_numpy()
    size = df.groupby("user_id")["item_id"].transform("size").to_numpy()
    n_valid = np.minimum(np.floor(frac * size), size - 1)
    is_valid = pos >= size - n_valid
    return df[~is_valid].reset_index(drop=True), df[is_valid].reset_index(drop=True)


def catalogue_eval_data(
    ds: Dataset, train: pd.DataFrame, valid: pd.DataFrame, *, seed: int
) -> EvalData:
    """EvalData over every item of ``ds.items`` and every user with interactions.

    Args:
        ds: The dataset (its items table is the catalogue; its tag events give the
            training pairs' user tags).
        train: Training interactions (canonical columns).
        valid: Validation interactions.
        seed: Recorded seed.

    Returns:
        EvalData with ``item_ids`` = all catalogue ids (sorted), an empty test part and
        items whose user tags come from ``train`` pairs only.
    """
    items = training_items(ds, train, user_cutoffs=valid.groupby("user_id")["timestamp"].min())
    items = items.sort_values("item_id", kind="stable").reset_index(drop=True)
    item_ids = items["item_id"].to_numpy(np.int64)
    user_ids = np.unique(
        np.concatenate([train["user_id"].to_numpy(np.int64), valid["user_id"].to_numpy(np.int64)])
    )
    shape = (len(user_ids), len(item_ids))

    def index(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        u = np.searchsorted(user_ids, df["user_id"].to_numpy(np.int64))
        i = np.searchsorted(item_ids, df["item_id"].to_numpy(np.int64))
        if len(i) and (i.max() >= len(item_ids) or (item_ids[i] != df["item_id"].to_numpy()).any()):
            raise DataError("an interaction names an item missing from the items table")
        return u, i

    def matrix(df: pd.DataFrame) -> sp.csr_matrix:
        u, i = index(df)
        m = sp.csr_matrix((np.ones(len(df), np.float32), (u, i)), shape=shape)
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    tu, ti = index(train)
    train_inter = train.assign(user_idx=tu, item_idx=ti).reset_index(drop=True)
    users = ds.users.drop_duplicates("user_id").set_index("user_id")
    users = users.reindex(user_ids).reset_index().rename(columns={"index": "user_id"})
    return EvalData(
        user_ids=user_ids,
        item_ids=item_ids,
        train=matrix(train),
        valid=matrix(valid),
        test=sp.csr_matrix(shape, dtype=np.float32),
        train_interactions=train_inter,
        items=items,
        users=users,
        candidate_items=None,
        split="serving",
        seed=seed,
        dataset_name=ds.name,
        **attribute_tables(ds, item_ids, user_ids),
    )
