"""RP3beta (Paudel et al. 2016; Christoffel et al. 2015) as an item-neighbour table source.

A random walk of three steps, item -> user -> item, with transition probabilities raised
to ``alpha``, then each target item's probability divided by its popularity to the power
``beta`` (which pushes the walk's long-tail finds up):

    W[i, j] = (sum_u P(u | i)^alpha * P(j | u)^alpha) / pop(j)^beta,   W[i, i] = 0.

For every item the ``k`` largest ``W[i, j]`` are kept in the
:mod:`shared.model.item_knn` format, so the retrieval service serves it with
:func:`shared.model.item_knn.score_from_history` like the EASE and item-kNN tables:
score(u, j) = sum over the user's history items i of ``W[i, j]``.

The item x item product is computed in blocks of rows, so catalogues of tens of
thousands of items fit in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from shared.contracts.errors import ConfigError
from shared.model.item_knn import knn_matrix
from training.models.ranking_sources import NeighborTableSource

RP3_NEIGHBORS_FILE = "rp3beta_neighbors.npy"
RP3_WEIGHTS_FILE = "rp3beta_weights.npy"


def _row_stochastic(m: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """Rows scaled to sum to 1, then every entry raised to ``alpha``."""
    sums = np.asarray(m.sum(axis=1)).ravel()
    scale = np.where(sums > 0, 1.0 / np.maximum(sums, 1e-12), 0.0)
    out = sp.csr_matrix(sp.diags(scale) @ m, dtype=np.float64)
    out.data = np.power(out.data, alpha)
    return out


def build_rp3beta(
    train: sp.spmatrix, *, alpha: float = 1.0, beta: float = 0.6, k: int = 200,
    block_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """RP3beta neighbour table of binary interactions ``train`` [n_users, n_items].

    Returns:
        ``neighbors`` [n_items, k] int32, best first, -1 padding; ``weights`` [n_items, k]
        float32, 0 on padding. Only pairs with a walk between them (weight > 0) are kept.
    """
    if k < 1 or alpha <= 0 or beta < 0:
        raise ConfigError(f"need k >= 1, alpha > 0, beta >= 0; got k={k}, alpha={alpha}, "
                          f"beta={beta}")  # fmt: skip
    x = sp.csr_matrix(train, dtype=np.float64)
    x.data[:] = 1.0
    n_items = x.shape[1]
    p_ui = _row_stochastic(x, alpha)  # user -> item
    p_iu = _row_stochastic(sp.csr_matrix(x.T), alpha)  # item -> user
    pop = np.asarray(x.sum(axis=0)).ravel()
    damp = np.where(pop > 0, 1.0 / np.power(np.maximum(pop, 1.0), beta), 0.0)
    k = min(k, max(n_items - 1, 1))
    neighbors = np.full((n_items, k), -1, dtype=np.int32)
    weights = np.zeros((n_items, k), dtype=np.float32)
    for start in range(0, n_items, block_size):
        stop = min(start + block_size, n_items)
        block = (p_iu[start:stop] @ p_ui).toarray() * damp[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0  # never its own neighbour
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n_items else np.argsort(
            -block, axis=1)[:, :k]  # fmt: skip
        vals = np.take_along_axis(block, top, axis=1)
        # best first; equal weights by the lower item index
        order = np.lexsort((top, -vals), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
        keep = vals > 0
        neighbors[start:stop] = np.where(keep, top, -1)
        weights[start:stop] = np.where(keep, vals, 0.0)
    return neighbors, weights


#: Validation grid of :class:`RP3betaRecommender` (widened when an end wins).
ALPHAS = (0.5, 0.75, 1.0)
BETAS = (0.2, 0.4, 0.6)


def _widen_by(step: float, lower: float, upper: float) -> Any:
    """A grid-search widening rule: one ``step`` past the winning end, within bounds."""

    def widen(values: Any, end: str) -> float | None:
        nxt = values[0] - step if end == "low" else values[-1] + step
        return round(nxt, 4) if lower <= nxt <= upper else None

    return widen


class RP3betaRecommender(NeighborTableSource):
    """:func:`build_rp3beta` as a Recommender and a servable neighbour table.

    Args:
        alpha: Exponent of the transition probabilities; None (with ``beta`` None) tunes
            both on validation NDCG@10 over :data:`ALPHAS` x :data:`BETAS`.
        beta: Popularity penalty of the target item.
        k: Neighbours kept per item.
        name: Report name.
    """

    def __init__(self, alpha: float | None = 0.75, beta: float | None = 0.6, k: int = 200,
                 name: str = "RP3beta") -> None:  # fmt: skip
        self.name = name
        self.files = (RP3_NEIGHBORS_FILE, RP3_WEIGHTS_FILE)
        self.alpha, self.beta, self.k = alpha, beta, int(k)
        self.hyperparameters: dict[str, Any] = {"alpha": alpha, "beta": beta, "k": self.k}
        self.neighbors = np.zeros((0, self.k), dtype=np.int32)
        self.weights = np.zeros((0, self.k), dtype=np.float32)
        self._x = sp.csr_matrix((0, 0), dtype=np.float32)
        self._w = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: Any) -> None:
        """Build the table from ``data.train`` (binary: a walk counts interactions),
        tuning alpha and beta on validation first when they were not given."""
        if self.alpha is None or self.beta is None:
            self.alpha, self.beta, search = tune_on_valid(data, self.k)
            self.hyperparameters = {"alpha": self.alpha, "beta": self.beta, "k": self.k,
                                    "search": search}  # fmt: skip
        self._x = sp.csr_matrix(data.train, dtype=np.float32)
        self.neighbors, self.weights = build_rp3beta(
            self._x, alpha=self.alpha, beta=self.beta, k=self.k
        )
        self._w = knn_matrix(self.neighbors, self.weights)


def tune_on_valid(data: Any, k: int = 200) -> tuple[float, float, dict[str, Any]]:
    """alpha and beta of RP3beta by validation NDCG@10 (train read only to build it)."""
    from training.evaluation.tuning import grid_search

    def make(point: dict[str, float]) -> RP3betaRecommender:
        model = RP3betaRecommender(alpha=point["alpha"], beta=point["beta"], k=k)
        model.fit(data)
        return model

    result, _ = grid_search(
        {"alpha": ALPHAS, "beta": BETAS}, make, data,
        widen={"alpha": _widen_by(0.25, 0.25, 2.0), "beta": _widen_by(0.2, 0.0, 1.4)},
        desc="RP3beta on valid",
    )  # fmt: skip
    return float(result.best["alpha"]), float(result.best["beta"]), result.to_dict()
