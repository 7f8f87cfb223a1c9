"""The two-tower model's training examples: next-item predictions, the target left out.

For each train interaction ``(user, item, t)`` the query is the user plus the user's items
strictly earlier than ``t`` (the last ``history_length`` of them), the candidate is
``item``. The query therefore never sees its own target. :class:`TrainingExamples` stores
them compactly; :mod:`training.models.two_tower` trains on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TrainingExamples:
    """Next-item training examples, stored compactly (histories are sliced per batch).

    Attributes:
        user_table_index: [N] int32 ``user_idx + 1`` of each example.
        item_idx: [N] int64 target item of each example.
        seq_items: [N] int32 ``item_idx + 1`` of all interactions sorted by (user, time).
        cut: [N] int64 position in ``seq_items`` where the example's history ends (exclusive).
        user_start: [N] int64 position in ``seq_items`` where the example's user starts.
        user_end: [N] int64 position in ``seq_items`` where the example's user ends (exclusive).
        item_counts: [n_items] int64 training interactions per item.
        weight: [N] float32 relative confidence of each example (its loss weight), or None
            (every example weighs 1).

    Example ``e`` is the interaction at position ``e`` of ``seq_items``.
    """

    user_table_index: np.ndarray
    item_idx: np.ndarray
    seq_items: np.ndarray
    cut: np.ndarray
    user_start: np.ndarray
    user_end: np.ndarray
    item_counts: np.ndarray
    weight: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.item_idx)

    @property
    def log_q(self) -> np.ndarray:
        """[n_items] float32 log of each item's sampling probability (frequency in batches)."""
        p = np.maximum(self.item_counts, 1) / max(int(self.item_counts.sum()), 1)
        return np.log(p).astype(np.float32)

    def histories(self, rows: np.ndarray, length: int) -> np.ndarray:
        """[B, length] int32 histories of ``rows``: the items strictly earlier than the target.

        Table indices (``item_idx + 1``), most recent last, left-padded with 0.
        """
        pos = self.cut[rows, None] + np.arange(-length, 0)[None, :]
        valid = pos >= self.user_start[rows, None]
        return np.where(valid, self.seq_items[np.maximum(pos, 0)], 0).astype(np.int32)

    def other_items(self, rows: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        """[B, length] int32 histories of ``rows``: the user's other items, at any time.

        The target is always left out. A user with at most ``length`` other items
        gets all of them; otherwise ``length`` positions are drawn uniformly (with
        replacement, so the mean of their embeddings is an unbiased estimate of the
        mean over all other items). Kept in time order, left-padded with 0.
        """
        start, end = self.user_start[rows], self.user_end[rows]
        n_other = (end - start - 1)[:, None]
        own = (rows - start)[:, None]
        k = np.arange(length)[None, :] - (length - np.minimum(n_other, length))
        drawn = np.sort((rng.random((len(rows), length)) * n_other).astype(np.int64), axis=1)
        offset = np.where(n_other <= length, k, drawn)
        offset = offset + (offset >= own)
        valid = k >= 0
        pos = np.where(valid, start[:, None] + offset, 0)
        return np.where(valid, self.seq_items[pos], 0).astype(np.int32)


def build_training_examples(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    timestamps: np.ndarray,
    n_items: int,
    weights: np.ndarray | None = None,
) -> TrainingExamples:
    """Leave-the-target-out next-item examples from train interactions.

    Args:
        user_idx: [N] int user positions.
        item_idx: [N] int item positions.
        timestamps: [N] int timestamps; items with the same timestamp as the target
            are not in its history (history = strictly earlier).
        n_items: Catalogue size.
        weights: [N] optional loss weight of each interaction (its relative confidence).

    Returns:
        The examples, ordered by (user, timestamp, item).
    """
    u = np.asarray(user_idx, dtype=np.int64)
    i = np.asarray(item_idx, dtype=np.int64)
    t = np.asarray(timestamps, dtype=np.int64)
    order = np.lexsort((i, t, u))
    u, i, t = u[order], i[order], t[order]
    n = len(u)
    pos = np.arange(n)
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = u[1:] != u[:-1]
    new_time = new_user.copy()
    new_time[1:] |= t[1:] != t[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, pos, 0))
    last = np.ones(n, dtype=bool)
    last[:-1] = u[1:] != u[:-1]
    user_end = np.minimum.accumulate(np.where(last, pos + 1, n)[::-1])[::-1]
    cut = np.maximum.accumulate(np.where(new_time, pos, 0))
    return TrainingExamples(
        user_table_index=(u + 1).astype(np.int32),
        item_idx=i,
        seq_items=(i + 1).astype(np.int32),
        cut=cut.astype(np.int64),
        user_start=user_start.astype(np.int64),
        user_end=user_end.astype(np.int64),
        item_counts=np.bincount(i, minlength=n_items).astype(np.int64),
        weight=None if weights is None else np.asarray(weights, np.float32)[order],
    )


def last_items(
    user_idx: np.ndarray, item_idx: np.ndarray, timestamps: np.ndarray, n_users: int, length: int
) -> list[np.ndarray]:
    """Each user's last ``length`` items, oldest first (the serving history of known users).

    Returns:
        ``n_users`` int64 arrays of item indices, most recent last.
    """
    u = np.asarray(user_idx, dtype=np.int64)
    order = np.lexsort((np.asarray(item_idx), np.asarray(timestamps), u))
    u_sorted, i_sorted = u[order], np.asarray(item_idx, dtype=np.int64)[order]
    bounds = np.searchsorted(u_sorted, np.arange(n_users + 1))
    return [
        i_sorted[max(bounds[k], bounds[k + 1] - length) : bounds[k + 1]] for k in range(n_users)
    ]
