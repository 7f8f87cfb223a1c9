"""Item-to-item collaborative neighbours: a scalable candidate source.

Offline, :func:`build_item_knn` keeps for every item up to ``k`` items it
recommends, by shrunk cosine on binary co-occurrence,

    sim(i, j) = |U_i & U_j| / (sqrt(|U_i|) * sqrt(|U_j|) + shrink),

computed in blocks of items with scipy sparse products so catalogues of tens of
thousands of items fit in memory. Online, :func:`score_from_history` sums the
neighbour weights of a user's recent items (numpy only, one request at a time).
The pipeline saves ``neighbors`` and ``weights`` as two ``.npy`` files.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from shared.contracts.errors import ConfigError, ValidationError

if TYPE_CHECKING:  # scipy is imported where it is used: the service only needs numpy
    import scipy.sparse as sp

NEIGHBORS_FILE = "item_knn_neighbors.npy"
WEIGHTS_FILE = "item_knn_weights.npy"


def build_item_knn(
    train: sp.spmatrix,
    k: int = 100,
    shrink: float = 10.0,
    candidate_k: int | None = 50,
    block_size: int | None = None,
    progress: bool = False,
    binary: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour table: for every (history) item, the items it recommends and their weights.

    With ``candidate_k`` (the default), item ``j`` recommends item ``i`` only if
    ``j`` is among the ``candidate_k`` most similar items of ``i`` – the
    truncation of classic item-based CF, where a candidate's score sums its own
    nearest neighbours found in the history – and keeps its ``k`` strongest such
    ``i``. With ``candidate_k=None`` item ``j`` simply keeps its own top ``k``.

    Args:
        train: [n_users, n_items] interactions; any nonzero counts as 1 unless ``binary``
            is False (then the values, each pair's confidence, weigh the cosine).
        k: Entries kept per item.
        shrink: Added to the cosine denominator; damps pairs of rare items.
        candidate_k: Neighbours kept per candidate item before inversion (None = off).
        block_size: Items per block (default: keeps a dense block under ~64 MB).
        progress: Show a tqdm bar on stderr.
        binary: Count every interaction as 1 (the default).

    Returns:
        ``neighbors`` [n_items, k] int32 item indices, best first, -1 padding;
        ``weights`` [n_items, k] float32 similarities, 0 on padding. An item is
        never its own neighbour; only pairs with co-occurrence > 0 are kept.
        Equal weights are ordered by the lower item index.
    """
    if k < 1 or (candidate_k is not None and candidate_k < 1):
        raise ConfigError(f"k and candidate_k must be >= 1, got k={k}, candidate_k={candidate_k}")
    if shrink < 0:
        raise ConfigError(f"shrink must be >= 0, got {shrink}")
    if candidate_k is None:
        return _top_similar(train, k, shrink, block_size, progress, binary)
    nb, w = _top_similar(train, candidate_k, shrink, block_size, progress, binary)
    return _invert(nb, w, k)


def _top_similar(
    train: sp.spmatrix, k: int, shrink: float, block_size: int | None, progress: bool,
    binary: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's own top-``k`` shrunk-cosine neighbours ([n_items, k] int32 / float32)."""
    import scipy.sparse as sp
    from tqdm import tqdm

    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.eliminate_zeros()
    if binary:
        x.data[:] = 1.0
    n_items = x.shape[1]
    xt = x.T.tocsr()  # [n_items, n_users]
    norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel()).astype(np.float32)
    if block_size is None:
        block_size = max(1, min(n_items, (16 << 20) // max(n_items, 1)))
    kk = min(k, max(n_items - 1, 0))
    neighbors = np.full((n_items, k), -1, dtype=np.int32)
    weights = np.zeros((n_items, k), dtype=np.float32)
    starts = range(0, n_items, block_size) if kk else range(0)
    for start in tqdm(starts, desc="item-knn", disable=not progress, unit="block", file=sys.stderr):
        stop = min(start + block_size, n_items)
        co = (xt[start:stop] @ x).toarray()  # [b, n_items] co-occurrence (weighted) counts
        rows = np.arange(stop - start)
        co[rows, rows + start] = 0.0
        sim = co / (norms[start:stop, None] * norms[None, :] + shrink + 1e-12)
        sim[co <= 0] = 0.0
        if kk < n_items:
            cand = np.argpartition(-sim, kk - 1, axis=1)[:, :kk]
        else:
            cand = np.broadcast_to(np.arange(n_items), sim.shape)
        cand = np.sort(cand, axis=1)  # lower index first so the stable sort breaks ties by index
        vals = np.take_along_axis(sim, cand, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        cand = np.take_along_axis(cand, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        keep = vals > 0
        neighbors[start:stop, :kk] = np.where(keep, cand, -1)
        weights[start:stop, :kk] = np.where(keep, vals, 0.0)
    return neighbors, weights


def _invert(neighbors: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Turn "candidate i -> its neighbours j" into "source j -> candidates i", top ``k`` per j."""
    n_items = len(neighbors)
    cand = np.repeat(np.arange(n_items, dtype=np.int64), neighbors.shape[1])
    src = neighbors.ravel().astype(np.int64)
    w = weights.ravel()
    keep = src >= 0
    cand, src, w = cand[keep], src[keep], w[keep]
    order = np.lexsort((cand, -w, src))
    cand, src, w = cand[order], src[order], w[order]
    rank = np.arange(len(src)) - np.searchsorted(src, src)
    keep = rank < k
    out_nb = np.full((n_items, k), -1, dtype=np.int32)
    out_w = np.zeros((n_items, k), dtype=np.float32)
    out_nb[src[keep], rank[keep]] = cand[keep]
    out_w[src[keep], rank[keep]] = w[keep]
    return out_nb, out_w


# score_from_history sums neighbour weights sparsely (sort the h*K touched items) when
# h*K * SPARSE_FACTOR < n_items, else densely (a bincount over the catalogue): the sort
# wins for short histories, the bincount for long ones (figures:
# docs/scaling.md#measurements-behind-code-choices).
SPARSE_FACTOR = 16


def score_from_history(
    history_idx: Sequence[int] | np.ndarray,
    neighbors: np.ndarray,
    weights: np.ndarray,
    n_items: int | None = None,
    k: int = 100,
    exclude: Sequence[int] | np.ndarray | None = None,
    history_weights: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates for one user: items scored by the summed neighbour weights of the history.

    Args:
        history_idx: [h] item indices the user interacted with (any order).
        neighbors: [n_items, K] int32 from :func:`build_item_knn`.
        weights: [n_items, K] float32 from :func:`build_item_knn`.
        n_items: Catalogue size (default ``len(neighbors)``).
        k: Candidates to return.
        exclude: Extra item indices never returned (the history always is excluded).
        history_weights: Optional [h] weight per history item (e.g. recency).

    Returns:
        ``(idx, score)``: up to ``k`` int64 item indices and float32 scores, best first
        (ties by lower index). Only items with a positive score are returned.

    Raises:
        ValidationError: A history index is outside the catalogue.
    """
    n = len(neighbors) if n_items is None else int(n_items)
    hist = np.asarray(history_idx, dtype=np.int64).reshape(-1)
    if hist.size == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if hist.min() < 0 or hist.max() >= len(neighbors):
        raise ValidationError(
            f"history item indices must be in [0, {len(neighbors)}), got {hist.min()}..{hist.max()}"
        )
    nb = neighbors[hist]  # [h, K]
    w = weights[hist].astype(np.float64)
    if history_weights is not None:
        hw = np.asarray(history_weights, dtype=np.float64).reshape(-1)
        if hw.shape != hist.shape:
            raise ValidationError(f"history_weights must have {hist.size} values, got {hw.size}")
        w = w * hw[:, None]
    valid = nb >= 0
    touched_n = int(np.count_nonzero(valid))
    if touched_n * SPARSE_FACTOR < n:
        # Sparse accumulation over the h*K touched items only, for a long catalogue
        # and a short history (a dense [n_items] bincount grows with the catalogue).
        touched, inv = np.unique(nb[valid], return_inverse=True)
        summed = np.bincount(inv, weights=w[valid], minlength=touched.size)
        summed[np.isin(touched, hist)] = 0.0
        if exclude is not None:
            summed[np.isin(touched, np.asarray(exclude, dtype=np.int64))] = 0.0
        pos_mask = (summed > 0) & (touched < n)
        positive, vals = touched[pos_mask], summed[pos_mask]
    else:
        scores = np.bincount(nb[valid], weights=w[valid], minlength=n)
        scores[hist] = 0.0
        if exclude is not None:
            scores[np.asarray(exclude, dtype=np.int64)] = 0.0
        positive = np.flatnonzero(scores > 0)
        vals = scores[positive]
    if positive.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if positive.size > k:
        kth = np.partition(vals, positive.size - k)[positive.size - k]  # k-th largest score
        above = np.flatnonzero(vals > kth)
        ties = np.flatnonzero(vals == kth)[: k - above.size]  # lowest indices among ties
        keep = np.concatenate([above, ties])
        positive, vals = positive[keep], vals[keep]
    order = np.lexsort((positive, -vals))
    return positive[order].astype(np.int64), vals[order].astype(np.float32)


def knn_matrix(
    neighbors: np.ndarray, weights: np.ndarray, n_items: int | None = None
) -> sp.csr_matrix:
    """The neighbour table as a sparse [n_items, n_items] similarity matrix (row = source item)."""
    import scipy.sparse as sp

    n = len(neighbors) if n_items is None else int(n_items)
    rows = np.repeat(np.arange(len(neighbors)), neighbors.shape[1])
    cols = neighbors.ravel()
    vals = weights.ravel()
    keep = cols >= 0
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(n, n), dtype=np.float32)
