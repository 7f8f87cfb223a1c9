"""What the models take from implicit feedback: pair confidence and explicit negatives.

* **Confidence** (:func:`pair_confidence`): each training pair's ``weight``
  (:mod:`training.data.event_weights`: the sum of its events' weights; a rating weighs its
  value) divided by the mean over the training pairs, so it is a *relative* sample weight
  (mean 1) whatever the scale of the weights. The two-tower model weighs each example's
  loss by it; EASE solves on the confidence-weighted matrix (:func:`weighted_train`), and
  item-kNN's cosine similarities are computed on it.
  Without a ``weight`` column (an evaluation split), or when every pair weighs the same,
  there is none and the models train exactly as on binary data.
* **Explicit negatives** (:func:`negatives_matrix`, :func:`add_negatives`): the pairs of a
  ``dislike`` or ``hide`` event. The ranker's training lists get each such item of the
  user as a candidate labelled 0, with the scores and ranks the sources give it (a hard
  negative: retrieval's sources may well propose it), so the ranker learns to put it down.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shared.model.candidates import CandidateSet


def pair_confidence(interactions: pd.DataFrame) -> np.ndarray | None:
    """[n] float32 relative confidence of each row (mean 1), or None when the rows carry no
    ``weight`` column or all weigh the same (binary data)."""
    if "weight" not in interactions.columns or interactions.empty:
        return None
    w = interactions["weight"].to_numpy(np.float64)
    if not np.isfinite(w).all() or w.min() <= 0 or np.ptp(w) == 0:
        return None
    return (w / w.mean()).astype(np.float32)


def weighted_train(data: Any) -> sp.csr_matrix:
    """``data.train`` with each pair's relative confidence as its value (binary without)."""
    conf = pair_confidence(data.train_interactions)
    if conf is None:
        return sp.csr_matrix(data.train, dtype=np.float32)
    inter = data.train_interactions
    m = sp.csr_matrix(
        (conf, (inter["user_idx"].to_numpy(np.int64), inter["item_idx"].to_numpy(np.int64))),
        shape=(data.n_users, data.n_items), dtype=np.float32,
    )
    m.sum_duplicates()
    return m


def negatives_matrix(negatives: pd.DataFrame | None, user_ids: np.ndarray,
                     item_ids: np.ndarray) -> sp.csr_matrix | None:
    """[n_users, n_items] binary CSR of the negative pairs over sorted ``user_ids`` /
    ``item_ids`` (pairs outside them left out); None when there are none."""
    if negatives is None or negatives.empty:
        return None
    u = np.searchsorted(user_ids, negatives["user_id"].to_numpy(np.int64))
    i = np.searchsorted(item_ids, negatives["item_id"].to_numpy(np.int64))
    uc, ic = np.minimum(u, len(user_ids) - 1), np.minimum(i, len(item_ids) - 1)
    ok = ((u < len(user_ids)) & (i < len(item_ids))
          & (user_ids[uc] == negatives["user_id"].to_numpy(np.int64))
          & (item_ids[ic] == negatives["item_id"].to_numpy(np.int64)))
    if not ok.any():
        return None
    m = sp.csr_matrix((np.ones(int(ok.sum()), np.float32), (u[ok], i[ok])),
                      shape=(len(user_ids), len(item_ids)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def add_negatives(sets: list[CandidateSet], srcs: dict[str, Any], data: Any,
                  users: np.ndarray, negatives: sp.csr_matrix, depth: int) -> list[CandidateSet]:
    """Each user's negative items appended to their candidates (a ranking list's label-0
    rows), with every source's score and rank among the user's unseen items (rank past
    ``depth``: missed, as retrieval would); fused score 0, below every merged candidate."""
    has = np.diff(negatives.indptr)[users] > 0
    if not has.any():
        return sets
    who = users[has]
    names = sets[0].source_names if sets else ()
    seen = data.train[who].toarray() > 0
    full = {}
    for name in names:
        sc = np.asarray(srcs[name].score(who), np.float64)
        full[name] = np.where(seen, -np.inf, sc)
    out = list(sets)
    for b, j in enumerate(np.flatnonzero(has)):
        cs = sets[j]
        u = int(users[j])
        neg = negatives.indices[negatives.indptr[u]:negatives.indptr[u + 1]]
        neg = neg[~np.isin(neg, cs.item_idx) & ~seen[b, neg]]
        if not len(neg):
            continue
        m, s = len(neg), len(names)
        scores = np.zeros((m, s), np.float32)
        ranks = np.full((m, s), cs.missing_rank, np.int32)
        for col, name in enumerate(names):
            row = full[name][b]
            rank = 1 + (row[None, :] > row[neg, None]).sum(axis=1)
            found = np.isfinite(row[neg]) & (rank <= depth)
            ranks[found, col] = rank[found]
            scores[found, col] = row[neg][found]
        mask = ((ranks < cs.missing_rank).astype(np.int64)
                << np.arange(s, dtype=np.int64)[None, :]).sum(axis=1)
        out[j] = CandidateSet(
            np.concatenate([cs.item_idx, neg.astype(cs.item_idx.dtype)]),
            np.concatenate([cs.scores, scores]), np.concatenate([cs.ranks, ranks]),
            np.concatenate([cs.source_mask, mask]),
            np.concatenate([cs.fused, np.zeros(m, cs.fused.dtype)]),
            cs.source_names, cs.missing_rank)
    return out
