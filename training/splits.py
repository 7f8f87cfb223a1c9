"""Deterministic train/valid/test splits of a :class:`~training.data.dataset.Dataset`.

Every kind first keeps ratings ``>= min_rating`` (``None`` keeps all): implicit
feedback. The iterated k-core filter (drop users and items with fewer than ``k_core``
interactions, again and again until nothing changes; ``k_core=0`` turns it off) runs
on all the data for ``random`` and ``temporal-user``, and on the training side only
for ``temporal`` and ``cold-items``, so that no future or held-out interaction decides
what stays in training.

* ``random`` – per user, a seeded shuffle, then train/valid/test by ratio
  (80/10/10 by default: RecBole's published ML-1M protocol). Counts follow
  RecBole's ``split_by_ratio``: ``int(frac * n)`` per part, bumped to 1 when the
  fraction is between 0 and 1 and the user keeps at least two train rows, so
  every user keeps at least one train interaction.
* ``temporal`` – one global time cutoff. Test is every interaction after the
  ``1 - test_frac`` (0.9) quantile of all timestamps, validation the ``valid_frac``
  (0.1) slice of all interactions just before it, train everything earlier. k-core
  runs on train; validation and test keep only users and items that have training
  interactions (users with training history; items a model can have learnt).
  :attr:`Split.cutoff` is the first second of the test period: nothing a model
  sees (interactions, tags) is from then on.
* ``temporal-user`` – the per-user variant: each user's interactions sorted by
  ``(timestamp, item_id)``; the last 20% are test, the last 10% of the rest are
  validation. Training data of one user can postdate another user's test
  interactions, so it is not a time cut; it is kept for comparison.
* ``cold-items`` – ``cold_frac`` (10%) of the items with at least
  ``cold_min_ratings`` (5) ratings (at or above ``min_rating``) are drawn with the
  seed and held out BEFORE any k-core filter: all their interactions are test. The
  other interactions are k-cored, then split per user into train/valid as in
  ``random`` (90/10 by default, for tuning). Test keeps the held-out items'
  interactions of users with training history. Evaluation then ranks only the
  held-out items.

Whatever the kind, features and item text come from the split's training view
(:func:`training.data.view.split_view`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from shared.contracts.errors import ConfigError, DataError
from training.data.dataset import INTERACTION_COLUMNS, Dataset

SplitKind = Literal["random", "temporal", "temporal-user", "cold-items"]
SPLIT_KINDS: tuple[str, ...] = ("random", "temporal", "temporal-user", "cold-items")

#: Default (valid_frac, test_frac) per kind; ``test_frac`` is unused by cold-items.
_DEFAULT_FRACS: dict[str, tuple[float, float]] = {
    "random": (0.1, 0.1),
    "temporal": (0.1, 0.1),
    "temporal-user": (0.1, 0.2),
    "cold-items": (0.1, 0.0),
}


@dataclass
class Split:
    """A deterministic split of one dataset's interactions.

    Attributes:
        train: Training interactions (canonical columns ``user_id``, ``item_id``,
            ``rating``, ``timestamp``), sorted by user then time.
        valid: Validation interactions, for tuning hyperparameters.
        test: Test interactions; never read while fitting.
        kind: ``random``, ``temporal``, ``temporal-user`` or ``cold-items``.
        seed: Seed used for shuffles and the cold-item draw.
        params: Every setting that produced the split (resolved defaults included)
            plus row counts, for reports.
        cold_items: Held-out item ids (sorted int64) for ``cold-items``, else None.
        cutoff: For ``temporal``, the first timestamp of the test period: every test
            interaction is at or after it, every train and validation interaction and
            every tag a model may see is before it. None for the other kinds.
        user_cutoffs: For ``temporal-user``, user_id -> the first timestamp of that
            user's validation or test interactions (none of the user's tags from then
            on are seen). None for the other kinds.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    kind: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    cold_items: np.ndarray | None = None
    cutoff: int | None = None
    user_cutoffs: pd.Series | None = None

    def summary(self) -> dict[str, Any]:
        """Row, user and item counts per part, for logs and reports."""
        out: dict[str, Any] = {}
        for part in ("train", "valid", "test"):
            df: pd.DataFrame = getattr(self, part)
            out[part] = {
                "n_interactions": len(df),
                "n_users": int(df["user_id"].nunique()),
                "n_items": int(df["item_id"].nunique()),
            }
        if self.cold_items is not None:
            out["n_cold_items"] = len(self.cold_items)
        return out


def preprocess(
    interactions: pd.DataFrame, *, min_rating: float | None = 3.0, k_core: int = 10
) -> pd.DataFrame:
    """Rating threshold then iterated k-core filter.

    Args:
        interactions: Canonical interactions table.
        min_rating: Keep rows with ``rating >= min_rating``; None keeps all.
        k_core: Minimum interactions per user and per item; 0 turns it off.

    Returns:
        The filtered rows (canonical columns, fresh index), every user and item
        with at least ``k_core`` interactions.
    """
    return k_core_filter(threshold(interactions, min_rating), k_core)


def threshold(interactions: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """The canonical columns of the rows with ``rating >= min_rating`` (None keeps all)."""
    missing = [c for c in INTERACTION_COLUMNS if c not in interactions.columns]
    if missing:
        raise DataError(
            f"interactions lack columns {missing}; expected {list(INTERACTION_COLUMNS)}. "
            "Load the data with training.data.load_dataset."
        )
    df = interactions.loc[:, list(INTERACTION_COLUMNS)]
    if min_rating is not None:
        df = df[df["rating"] >= min_rating]
    return df.reset_index(drop=True)


def k_core_filter(df: pd.DataFrame, k_core: int) -> pd.DataFrame:
    """Iterated k-core: users and items with fewer than ``k_core`` rows go, until stable."""
    if k_core < 0:
        raise ConfigError(f"k_core must be >= 0, got {k_core}; use 0 to turn the filter off.")
    if k_core > 1:
        while True:
            user_n = df.groupby("user_id")["item_id"].transform("size")
            item_n = df.groupby("item_id")["user_id"].transform("size")
            keep = (user_n >= k_core) & (item_n >= k_core)
            if bool(keep.all()):
                break
            df = df[keep]
    return df.reset_index(drop=True)


def ratio_counts(n: np.ndarray, valid_frac: float, test_frac: float) -> tuple[np.ndarray, ...]:
    """Per-user (train, valid, test) counts the way RecBole's ``split_by_ratio`` makes them.

    Args:
        n: [n_users] int interactions per user.
        valid_frac: Fraction for validation.
        test_frac: Fraction for test.

    Returns:
        Three [n_users] int64 arrays that add up to ``n``.
    """
    n = np.asarray(n, dtype=np.int64)
    n_valid = np.floor(valid_frac * n).astype(np.int64)
    n_test = np.floor(test_frac * n).astype(np.int64)
    n_train = n - n_valid - n_test
    # RecBole bumps the last parts first (test, then valid) while train keeps > 1.
    for frac, part in ((test_frac, n_test), (valid_frac, n_valid)):
        bump = (n_train > 1) & (frac * n > 0) & (frac * n < 1)
        part += bump
        n_train -= bump
    return n_train, n_valid, n_test


def _assign_by_position(
    df: pd.DataFrame, order: np.ndarray, valid_frac: float, test_frac: float
) -> np.ndarray:
    """Label rows 0=train, 1=valid, 2=test from their per-user position in ``order``.

    Args:
        df: Interactions (any row order).
        order: Row positions sorted by user, then by the within-user order to use
            (shuffle or time); the tail of each user's run becomes valid then test.
        valid_frac: Validation fraction.
        test_frac: Test fraction.

    Returns:
        [len(df)] int8 labels aligned to ``df`` rows.
    """
    users = df["user_id"].to_numpy()[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    n_train, n_valid, _ = ratio_counts(sizes, valid_frac, test_frac)
    pos = np.arange(len(users)) - np.repeat(starts, sizes)
    lab_sorted = np.zeros(len(users), dtype=np.int8)
    lab_sorted[pos >= np.repeat(n_train, sizes)] = 1
    lab_sorted[pos >= np.repeat(n_train + n_valid, sizes)] = 2
    labels = np.empty(len(users), dtype=np.int8)
    labels[order] = lab_sorted
    return labels


def _random_order(df: pd.DataFrame, seed: int) -> np.ndarray:
    """Row positions grouped by user, shuffled within each user with ``seed``."""
    rng = np.random.default_rng(seed)
    # Sort by item first so the shuffle does not depend on the input row order.
    base = np.lexsort((df["item_id"].to_numpy(), df["user_id"].to_numpy()))
    key = rng.random(len(df))
    return base[np.lexsort((key, df["user_id"].to_numpy()[base]))]


def _finish(df: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    part = df[mask].sort_values(["user_id", "timestamp", "item_id"], kind="mergesort")
    return part.reset_index(drop=True)


def make_split(
    ds: Dataset,
    kind: str,
    *,
    seed: int = 42,
    min_rating: float | None = 3.0,
    k_core: int = 10,
    valid_frac: float | None = None,
    test_frac: float | None = None,
    cold_frac: float = 0.1,
    cold_min_ratings: int = 5,
) -> Split:
    """Split a dataset's interactions deterministically.

    Args:
        ds: The dataset.
        kind: ``random``, ``temporal``, ``temporal-user`` or ``cold-items`` (see
            module docstring).
        seed: Seed for the per-user shuffle and the cold-item draw.
        min_rating: Keep ratings ``>=`` this (None keeps all).
        k_core: Iterated k-core threshold for users and items (0 = off).
        valid_frac: Validation fraction; default 0.1 for every kind (for
            ``temporal-user``, 10% of what remains after the test part).
        test_frac: Test fraction; default 0.1 (random, temporal), 0.2
            (temporal-user); unused by cold-items, whose test part is the held-out
            items' interactions.
        cold_frac: Fraction of eligible items held out (cold-items only).
        cold_min_ratings: Items need at least this many ratings ``>= min_rating``
            (before any k-core filter) to be eligible for hold-out (cold-items only).

    Returns:
        The :class:`Split`.

    Raises:
        ConfigError: Unknown kind or fractions that leave no training data.
        DataError: Nothing left after filtering.
    """
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"unknown split kind {kind!r}; expected one of {list(SPLIT_KINDS)}.")
    d_valid, d_test = _DEFAULT_FRACS[kind]
    vf = d_valid if valid_frac is None else float(valid_frac)
    tf = d_test if test_frac is None else float(test_frac)
    if vf < 0 or tf < 0 or vf + tf >= 1:
        raise ConfigError(
            f"valid_frac={vf} and test_frac={tf} must be >= 0 and add up to less than 1."
        )
    if not 0 < cold_frac < 1:
        raise ConfigError(f"cold_frac must be in (0, 1), got {cold_frac}.")
    df = threshold(ds.interactions, min_rating)
    if kind in ("random", "temporal-user"):
        df = k_core_filter(df, k_core)
    if df.empty:
        raise DataError(
            f"no interactions left in {ds.name!r} after min_rating={min_rating} and "
            f"k_core={k_core}; lower them (min_rating=None, k_core=0 keep everything)."
        )
    params: dict[str, Any] = {
        "min_rating": min_rating,
        "k_core": k_core,
        "k_core_on": "all" if kind in ("random", "temporal-user") else "train",
        "valid_frac": vf,
    }
    cold: np.ndarray | None = None
    cutoff: int | None = None
    if kind == "random":
        params["test_frac"] = tf
        labels = _assign_by_position(df, _random_order(df, seed), vf, tf)
    elif kind == "temporal-user":
        params["test_frac"] = tf
        labels = _temporal_labels(df, vf, tf)
    elif kind == "temporal":
        params["test_frac"] = tf
        df, labels, cutoff = _global_time_cut(df, vf, tf, k_core, params)
    else:
        df, labels, cold = _hold_out_items(df, seed, vf, k_core, cold_frac, cold_min_ratings,
                                           params)
    if not (labels == 0).any():
        raise DataError(
            f"the {kind} split of {ds.name!r} left no training interactions after "
            f"min_rating={min_rating} and k_core={k_core}; lower them or use more data."
        )
    params.update(
        n_interactions_after_filter=len(df),
        n_users_after_filter=int(df["user_id"].nunique()),
        n_items_after_filter=int(df["item_id"].nunique()),
    )
    split = Split(
        train=_finish(df, labels == 0),
        valid=_finish(df, labels == 1),
        test=_finish(df, labels == 2),
        kind=kind,
        seed=seed,
        params=params,
        cold_items=cold,
        cutoff=cutoff,
        user_cutoffs=(df[labels != 0].groupby("user_id")["timestamp"].min()
                      if kind == "temporal-user" else None),
    )
    split.params["counts"] = split.summary()
    return split


def _time_quantile(ts: np.ndarray, q: float) -> int:
    """The timestamp at quantile ``q`` (an observed value; ``q >= 1`` gives the last)."""
    ordered = np.sort(ts)
    return int(ordered[min(len(ordered) - 1, max(0, int(np.ceil(q * len(ordered))) - 1))])


def _global_time_cut(
    df: pd.DataFrame, vf: float, tf: float, k_core: int, params: dict[str, Any]
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """One time cutoff for everybody; k-core on train; held-out rows of known users/items.

    Returns:
        The kept rows, their labels (0 train, 1 valid, 2 test) and the test cutoff.
    """
    ts = df["timestamp"].to_numpy(np.int64)
    q_test = _time_quantile(ts, 1.0 - tf)
    q_valid = _time_quantile(ts, 1.0 - tf - vf)
    cutoff, valid_cutoff = q_test + 1, q_valid + 1
    train = k_core_filter(df[ts < valid_cutoff], k_core)
    held = df[ts >= valid_cutoff]
    known = held["user_id"].isin(train["user_id"]) & held["item_id"].isin(train["item_id"])
    held_ts = held["timestamp"].to_numpy(np.int64)
    is_test = held_ts >= cutoff
    params.update(
        cutoff=cutoff,
        valid_cutoff=valid_cutoff,
        test_dropped_unknown_user_or_item=int((~known.to_numpy() & is_test).sum()),
        valid_dropped_unknown_user_or_item=int((~known.to_numpy() & ~is_test).sum()),
    )
    held = held[known.to_numpy()]
    out = pd.concat([train, held], ignore_index=True)
    labels = np.concatenate([
        np.zeros(len(train), dtype=np.int8),
        np.where(held["timestamp"].to_numpy(np.int64) >= cutoff, 2, 1).astype(np.int8),
    ])
    return out, labels, cutoff


def _hold_out_items(
    df: pd.DataFrame, seed: int, vf: float, k_core: int, cold_frac: float,
    cold_min_ratings: int, params: dict[str, Any],
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Draw the cold items before any k-core, k-core the rest, split it per user.

    Returns:
        The kept rows, their labels and the held-out item ids that have test rows.
    """
    params.update(cold_frac=cold_frac, cold_min_ratings=cold_min_ratings)
    counts = df.groupby("item_id").size()
    eligible = np.sort(counts.index[counts >= cold_min_ratings].to_numpy(np.int64))
    n_cold = round(cold_frac * len(eligible))
    if n_cold < 1:
        raise DataError(
            f"cold-items split needs items with >= {cold_min_ratings} ratings; "
            f"{len(eligible)} qualify, too few to hold out {cold_frac:.0%}. "
            "Use a larger dataset or lower cold_min_ratings."
        )
    rng = np.random.default_rng(seed)
    drawn = np.sort(rng.choice(eligible, size=n_cold, replace=False)).astype(np.int64)
    is_cold = df["item_id"].isin(drawn).to_numpy()
    warm = k_core_filter(df[~is_cold], k_core)
    warm_labels = _assign_by_position(warm, _random_order(warm, seed), vf, 0.0)
    train_users = warm["user_id"].to_numpy()[warm_labels == 0]
    test = df[is_cold]
    test = test[test["user_id"].isin(train_users).to_numpy()]
    cold = np.unique(test["item_id"].to_numpy(np.int64))
    params.update(n_cold_drawn=int(n_cold), n_cold_with_test=len(cold),
                  n_eligible_items=len(eligible))
    out = pd.concat([warm, test], ignore_index=True)
    labels = np.concatenate([warm_labels, np.full(len(test), 2, dtype=np.int8)])
    return out, labels, cold


def _temporal_labels(df: pd.DataFrame, valid_frac: float, test_frac: float) -> np.ndarray:
    """Per user, by (time, item): the last ``test_frac`` test, the last valid of the rest."""
    users = df["user_id"].to_numpy()
    order = np.lexsort((df["item_id"].to_numpy(), df["timestamp"].to_numpy(), users))
    users_sorted = users[order]
    starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    sizes = np.diff(np.r_[starts, len(users_sorted)])
    rest = ratio_counts(sizes, 0.0, test_frac)[0]
    n_train = ratio_counts(rest, valid_frac, 0.0)[0]
    pos = np.arange(len(users_sorted)) - np.repeat(starts, sizes)
    labels = np.zeros(len(users_sorted), dtype=np.int8)
    labels[pos >= np.repeat(n_train, sizes)] = 1
    labels[pos >= np.repeat(rest, sizes)] = 2
    out = np.empty_like(labels)
    out[order] = labels
    return out
