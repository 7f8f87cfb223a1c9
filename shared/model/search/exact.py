"""Exact cosine search over a small catalogue, with the query interface of :class:`AnnIndex`.

Below a size, brute force is both exact and cheaper than walking Annoy's trees: one
matrix-vector product and a partial sort. So :func:`use_exact` picks it up to
:data:`EXACT_MAX_ELEMENTS` (items x dim); above that the bundle's ANN index serves
(figures: ``docs/scaling.md#measurements-behind-code-choices``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.contracts.errors import ConfigError
from shared.model.search import IndexKind

#: Up to this many float32 elements (items x width, 16 MB) exact search is used.
EXACT_MAX_ELEMENTS = 4_000_000


def use_exact(n_items: int, dim: int) -> bool:
    """True when exact search over ``n_items`` vectors of width ``dim`` beats Annoy here."""
    return int(n_items) * int(dim) <= EXACT_MAX_ELEMENTS


class ExactSearch:
    """Brute-force cosine top-k over the rows of a matrix (positions 0..n-1)."""

    kind: IndexKind = "exact"
    offload = False  # one matrix-vector product: cheaper than a thread hop

    def __init__(self, vectors: np.ndarray) -> None:
        """Keep a row-normalised float32 copy of ``vectors`` [n, d]."""
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2:
            raise ConfigError(f"vectors must be a 2-D array [n, d], got shape {arr.shape}")
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        self._unit = np.ascontiguousarray(arr / np.where(norms > 0, norms, 1.0))
        self.dim = int(arr.shape[1])

    @property
    def n_items(self) -> int:
        """Number of searchable vectors."""
        return int(self._unit.shape[0])

    @property
    def params(self) -> dict[str, Any]:
        """Search parameters for logs and the admin status."""
        return {"metric": "cosine", "kind": "exact", "dim": self.dim, "n_items": self.n_items}

    def query(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k neighbours of one vector.

        Args:
            vector: float32 [d].
            k: Neighbours wanted.

        Returns:
            (ids int64 [m], scores float32 [m]) with m = min(k, n_items), best first
            (ties: smaller position first); scores are cosine similarities.
        """
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim:
            raise ConfigError(f"query vector has width {vec.shape[0]}, the index has {self.dim}")
        n = self.n_items
        m = max(0, min(int(k), n))
        if m == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        norm = float(np.linalg.norm(vec))
        sims = self._unit @ (vec / norm if norm > 0 else vec)
        top = np.argpartition(-sims, m - 1)[:m] if m < n else np.arange(n)
        order = np.lexsort((top, -sims[top]))
        ids = top[order].astype(np.int64)
        return ids, sims[ids].astype(np.float32)

    def query_batch(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k for each row of ``vectors`` [q, d]; rows padded with id -1, score -inf."""
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2:
            raise ConfigError(f"queries must be a 2-D array [q, d], got shape {arr.shape}")
        ids = np.full((arr.shape[0], max(int(k), 0)), -1, dtype=np.int64)
        scores = np.full((arr.shape[0], max(int(k), 0)), -np.inf, dtype=np.float32)
        for row in range(arr.shape[0]):
            got_ids, got_scores = self.query(arr[row], k)
            ids[row, : got_ids.shape[0]] = got_ids
            scores[row, : got_scores.shape[0]] = got_scores
        return ids, scores
