"""Candidate sources the two-stage pipeline adds to the retrieval models, as Recommenders.

* :class:`ContentRecommender` – content (BERT) neighbours of the recent history:
  cosine of every item with the mean vector of the user's last N items (the
  retrieval service answers the same query with Annoy).
* :class:`SparseEASERecommender` – EASE kept as a top-k item-neighbour table in
  the :mod:`shared.model.item_knn` format, so the retrieval service serves it with
  :func:`shared.model.item_knn.score_from_history`. Above ``max_items`` items (EASE's
  closed form needs an n x n inverse: 15 GB of float32 at ml-25m's 62k items) it is
  solved over the ``max_items`` most popular items only; the item-kNN source covers the
  tail.
* :func:`default_sources` – the pipeline's source list (two-tower, EASE
  neighbours, item-kNN, content, popularity).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from shared.model.candidates import top_n

EASE_NEIGHBORS_FILE = "ease_neighbors.npy"
EASE_WEIGHTS_FILE = "ease_weights.npy"


class ContentRecommender:
    """Content neighbours of the recent history: score = cos(item, mean of the last N items).

    Args:
        content: [n_items, D] L2-normalised content vectors.
        history_window: Recent items averaged into the query vector.
        name: Report name.
    """

    def __init__(self, content: np.ndarray, history_window: int = 20,
                 name: str = "Content") -> None:
        self.name = name
        self.content = np.asarray(content, dtype=np.float32)
        self.history_window = int(history_window)
        self.hyperparameters: dict[str, Any] = {"history_window": self.history_window}
        self._query = np.zeros((0, self.content.shape[1]), dtype=np.float32)

    def fit(self, data: Any) -> None:
        """Average each user's last ``history_window`` train items (by time)."""
        hist = user_histories(data.train_interactions, data.n_users)
        q = np.zeros((data.n_users, self.content.shape[1]), dtype=np.float32)
        for u, h in enumerate(hist):
            if h.size:
                q[u] = self.content[h[-self.history_window:]].mean(axis=0)
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        self._query = q / np.maximum(norms, 1e-9)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 cosine of each item with the user's recent-content vector."""
        return self._query[np.asarray(user_idx, dtype=np.int64)] @ self.content.T


class NeighborTableSource:
    """A source kept as an item-neighbour table (``neighbors``/``weights``, the
    :mod:`shared.model.item_knn` format): scores sum the kept weights of a user's
    train items, as the retrieval service's :func:`shared.model.item_knn.score_from_history`
    does. Subclasses fit ``_x`` (train), ``neighbors``, ``weights`` and ``_w``."""

    files: tuple[str, str]  # (neighbors, weights) file names
    neighbors: np.ndarray
    weights: np.ndarray
    _x: sp.csr_matrix
    _w: sp.csr_matrix

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 summed kept weights of each user's train items."""
        rows = self._x[np.asarray(user_idx, dtype=np.int64)]
        return np.asarray((rows @ self._w).toarray(), dtype=np.float32)

    def save(self, out_dir: str | Path) -> dict[str, str]:
        """Write ``neighbors`` and ``weights`` as ``.npy`` (no pickle)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        nb_file, w_file = self.files
        np.save(out / nb_file, self.neighbors, allow_pickle=False)
        np.save(out / w_file, self.weights, allow_pickle=False)
        return {"neighbors": str(out / nb_file), "weights": str(out / w_file)}


class SparseEASERecommender(NeighborTableSource):
    """EASE (Steck 2019) kept as a sparse item-neighbour table, servable like item-kNN.

    ``B`` is solved in closed form; for every item only its ``k`` largest positive
    outgoing weights ``B[i, j]`` are kept, in the ``neighbors``/``weights`` format
    of :func:`shared.model.item_knn.build_item_knn`, so
    :func:`shared.model.item_knn.score_from_history`
    serves it unchanged. Score = ``sum_{h in history} B[h, i]``.

    Args:
        lam: L2 weight.
        k: Neighbours kept per item.
        max_items: Solve over at most this many items, the most interacted with in
            training (None = all). Other items get no neighbours and are never scored.
        name: Report name.
    """

    def __init__(self, lam: float = 100.0, k: int = 200, max_items: int | None = None,
                 name: str = "SparseEASE") -> None:
        self.name = name
        self.files = (EASE_NEIGHBORS_FILE, EASE_WEIGHTS_FILE)
        self.lam = float(lam)
        self.k = int(k)
        self.max_items = max_items
        self.hyperparameters: dict[str, Any] = {"lambda": self.lam, "k": self.k,
                                                "max_items": max_items}
        self.neighbors = np.zeros((0, self.k), dtype=np.int32)
        self.weights = np.zeros((0, self.k), dtype=np.float32)
        self._x = sp.csr_matrix((0, 0), dtype=np.float32)
        self._w = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: Any) -> None:
        """Solve B on ``data.train`` (each pair weighted by its confidence,
        :mod:`training.models.confidence`) and keep each item's top-``k`` positive weights."""
        from training.evaluation.baselines import EASE
        from training.models.confidence import weighted_train

        self._x = sp.csr_matrix(data.train, dtype=np.float32)
        n = data.n_items
        head = head_items(self._x, self.max_items)
        weighted = weighted_train(data)  # each pair's relative confidence (binary without)
        x_head = weighted[:, head] if len(head) < n else weighted
        gram = (x_head.T @ x_head).toarray().astype(np.float64)
        b = EASE.weights(gram, self.lam)
        del gram
        local_idx, local_val = top_n(b, self.k)
        del b
        local_val = np.where(np.isfinite(local_val) & (local_val > 0), local_val, 0.0)
        k = local_idx.shape[1]
        idx = np.zeros((n, k), dtype=np.int64)
        val = np.zeros((n, k), dtype=np.float32)
        idx[head], val[head] = head[local_idx], local_val
        self.neighbors = np.where(val > 0, idx, -1).astype(np.int32)
        self.weights = val
        rows = np.repeat(np.arange(n), k)
        keep = val.ravel() > 0
        self._w = sp.csr_matrix((val.ravel()[keep], (rows[keep], idx.ravel()[keep])),
                                shape=(n, n))



def head_items(train: sp.csr_matrix, max_items: int | None) -> np.ndarray:
    """The ``max_items`` items with the most training interactions, in item order (all
    items when there are no more; ties broken by the lower item index)."""
    n = train.shape[1]
    if max_items is None or n <= max_items:
        return np.arange(n)
    counts = np.bincount(train.indices, minlength=n)
    order = np.argsort(-counts, kind="stable")[:max_items]
    return np.sort(order)


def user_histories(interactions: Any, n_users: int) -> list[np.ndarray]:
    """Per user_idx, the train item_idx sorted by (timestamp, item_idx), oldest first."""
    u = interactions["user_idx"].to_numpy(np.int64)
    i = interactions["item_idx"].to_numpy(np.int64)
    t = interactions["timestamp"].to_numpy(np.int64)
    order = np.lexsort((i, t, u))
    u, i = u[order], i[order]
    bounds = np.searchsorted(u, np.arange(n_users + 1))
    return [i[bounds[k]:bounds[k + 1]] for k in range(n_users)]


def default_sources(
    content: np.ndarray,
    *,
    two_tower: bool = True,
    two_tower_config: Any = None,
    ease_lambda: float = 100.0,
    ease_max_items: int | None = None,
    history_window: int = 20,
    names: Sequence[str] | None = None,
    rp3beta: tuple[float, float] | None = None,
) -> list[Any]:
    """The pipeline's candidate sources as :class:`~training.models.two_stage.SourceSpec` s.

    Args:
        content: [n_items, D] content vectors aligned to the split's items.
        two_tower: Include the two-tower model (the slowest source to fit).
        two_tower_config: Its ``TwoTowerConfig`` (None = defaults, silent).
        ease_lambda: L2 weight of the EASE neighbour table.
        ease_max_items: EASE over at most this many (most popular) items (None = all).
        history_window: Recent items of the content source.
        names: Keep only these sources, in this order.
        rp3beta: ``(alpha, beta)`` of the RP3beta source (None: its defaults).

    Returns:
        ``[SourceSpec, ...]`` in order two_tower, ease, item_knn, content, popularity
        (``rp3beta`` only when named).
    """
    from training.evaluation.baselines import Popularity
    from training.models.retrieval_recommenders import ItemKNNRecommender, TwoTowerRecommender
    from training.models.rp3beta import RP3betaRecommender
    from training.models.two_stage import SourceSpec

    def make_two_tower() -> Any:
        from training.models.towers import TwoTowerConfig

        cfg = two_tower_config or TwoTowerConfig(verbose=0)
        return TwoTowerRecommender(cfg, content)

    specs = {
        "two_tower": SourceSpec("two_tower", make_two_tower),
        "ease": SourceSpec("ease", lambda: SparseEASERecommender(
            lam=ease_lambda, max_items=ease_max_items)),
        "item_knn": SourceSpec("item_knn", ItemKNNRecommender),
        # Not in the default order: a variant tried on validation (evaluate_models.py).
        "rp3beta": SourceSpec("rp3beta", lambda: RP3betaRecommender(*(rp3beta or ()))),
        "content": SourceSpec("content", lambda: ContentRecommender(content, history_window)),
        "popularity": SourceSpec("popularity", Popularity),
    }
    order = list(names) if names is not None else [
        n for n in specs if (two_tower or n != "two_tower") and n != "rp3beta"]
    return [specs[n] for n in order]
