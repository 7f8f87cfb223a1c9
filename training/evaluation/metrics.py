"""Vectorised top-K ranking metrics (RecBole's definitions, binary relevance).

All per-user functions take ``hits`` – a [B, K] bool matrix, ``hits[b, j]``
True when the item ranked ``j`` (0-based) for user ``b`` is relevant – and
return a [B] float64 array; the harness averages over users.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

DEFAULT_KS: tuple[int, ...] = (10, 20, 50)
METRIC_NAMES: tuple[str, ...] = ("recall", "ndcg", "hit", "mrr")


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` highest scores per row, best first.

    Uses ``np.argpartition`` (O(N) per row) then sorts only the ``k`` winners.
    Ties are broken by the lower column index among the winners.

    Args:
        scores: [B, N] scores.
        k: How many to return; clipped to N.

    Returns:
        [B, min(k, N)] int64 indices, sorted by descending score.
    """
    scores = np.asarray(scores)
    n = scores.shape[1]
    k = min(int(k), n)
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    part.sort(axis=1)  # lower index first, so the stable sort below breaks ties by index
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def hits_matrix(topk: np.ndarray, relevant: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """Which ranked items are relevant.

    Args:
        topk: [B, K] int column indices (output of :func:`topk_indices`).
        relevant: [B, N] relevance (CSR or dense); nonzero = relevant.

    Returns:
        [B, K] bool.
    """
    if isinstance(relevant, np.ndarray):
        dense = relevant != 0
    else:
        dense = np.asarray(relevant.toarray() != 0)
    return np.take_along_axis(dense, topk, axis=1)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Hits in the top ``k`` divided by the user's number of relevant items.

    Args:
        hits: [B, >=k] bool.
        n_relevant: [B] int, > 0.
        k: Cut-off.

    Returns:
        [B] float64.
    """
    return hits[:, :k].sum(axis=1) / np.asarray(n_relevant, dtype=np.float64)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Binary NDCG: DCG of the top ``k`` over the ideal DCG of min(|relevant|, k) hits.

    Args:
        hits: [B, >=k] bool.
        n_relevant: [B] int, > 0.
        k: Cut-off.

    Returns:
        [B] float64 in [0, 1].
    """
    kk = min(k, hits.shape[1])
    disc = _discounts(k)
    dcg = hits[:, :kk].astype(np.float64) @ disc[:kk]
    ideal_cum = np.cumsum(disc)
    n_ideal = np.clip(np.asarray(n_relevant, dtype=np.int64), 1, k)
    return np.asarray(dcg / ideal_cum[n_ideal - 1], dtype=np.float64)


def hit_rate_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """1.0 when any of the top ``k`` is relevant, else 0.0 ([B] float64)."""
    return np.asarray(hits[:, :k].any(axis=1), dtype=np.float64)


def mrr_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first relevant item within the top ``k``, 0 if none ([B])."""
    h = hits[:, :k]
    first = h.argmax(axis=1)
    found = h.any(axis=1)
    return np.where(found, 1.0 / (first + 1.0), 0.0)


def coverage_at_k(topk: np.ndarray, k: int, n_candidates: int) -> float:
    """Fraction of the candidate items that appear in any user's top ``k``.

    Args:
        topk: [B, >=k] indices into the candidate set (invalid entries as -1).
        k: Cut-off.
        n_candidates: Size of the candidate set.

    Returns:
        Coverage in [0, 1].
    """
    shown = np.unique(topk[:, :k])
    shown = shown[shown >= 0]
    return float(len(shown)) / max(int(n_candidates), 1)


def user_metrics(
    hits: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...] = DEFAULT_KS
) -> dict[str, np.ndarray]:
    """All per-user metrics for every K.

    Args:
        hits: [B, max(ks)] bool (may be narrower when the candidate set is small).
        n_relevant: [B] int, > 0.
        ks: Cut-offs.

    Returns:
        ``{"recall@10": [B], "ndcg@10": [B], "hit@10": [B], "mrr@10": [B], ...}``.
    """
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(hits, n_relevant, k)
        out[f"ndcg@{k}"] = ndcg_at_k(hits, n_relevant, k)
        out[f"hit@{k}"] = hit_rate_at_k(hits, k)
        out[f"mrr@{k}"] = mrr_at_k(hits, k)
    return out
