"""Nearest-neighbour search over item vectors: one interface, three implementations.

:class:`VectorIndex` is what retrieval and training call; :class:`~.exact.ExactSearch`
(brute force, for small catalogues), :class:`~.annoy_index.AnnIndex` (Annoy trees) and
:class:`~.hnsw.HnswIndex` (hnswlib graphs) implement it. Which one serves a catalogue
is a size decision (:func:`~.exact.use_exact`); the measurements behind it are in
``docs/scaling.md#measurements-behind-code-choices``.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

IndexKind = Literal["exact", "annoy", "hnsw"]


@runtime_checkable
class VectorIndex(Protocol):
    """Cosine top-k search over the rows of an item matrix (row position = item index)."""

    #: Which implementation this is, for readiness checks and logs.
    kind: IndexKind
    #: True when a query is long enough (and releases the GIL) to be worth a worker thread.
    offload: bool
    dim: int

    @property
    def n_items(self) -> int:
        """Number of searchable vectors."""
        ...

    @property
    def params(self) -> dict[str, Any]:
        """Search parameters for manifests, logs and the admin status."""
        ...

    def query(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of one float32 [d] vector: (ids int64 [m], cosine scores float32 [m])."""
        ...

    def query_batch(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of each row of [q, d]: ids int64 [q, k] (-1 padded), scores float32."""
        ...
