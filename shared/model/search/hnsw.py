"""HNSW graph indexes (hnswlib, cosine): a :class:`~shared.model.search.VectorIndex`.

An optional second index kind for large catalogues. Annoy stays the default and
is always in a bundle (memory-mapped, so processes share it and start fast);
an HNSW index, when the bundle has one, answers the same top-k queries from RAM
in a fraction of Annoy's time, at the same recall on item-tower vectors and a better
one on content vectors (figures, sweeps and the end-to-end effect:
``docs/scaling.md#ann-search-1m-x-64-item-tower-vectors-top-100`` and
``docs/scaling.md#content-bert-index-1m-x-384``).

Positions are item indices ``0..n-1`` as in :mod:`shared.model.search.annoy_index`; scores are
cosine similarities (hnswlib's cosine distance is ``1 - cos``). The search
releases the GIL, so queries from several threads run in parallel.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import BundleError, ConfigError
from shared.model.search import IndexKind

#: Graph degree and build beam: the ``make bench`` pick (bench/ann_bench.py).
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 100
#: Search beam for recall@100 >= 0.95 on 1M x 64 item vectors (``make bench``).
DEFAULT_EF = 250
#: Search beam for 384-d content vectors (``make bench``, content section): no beam
#: reaches recall@100 0.95 there at a serving cost, so this is a cost bound that still
#: beats Annoy's recall and latency (figures: docs/scaling.md#content-bert-index-1m-x-384).
WIDE_EF = 250
DEFAULT_SEED = 42
DEFAULT_THREADS = 2
_WIDE_DIM = 128


def default_ef(dim: int) -> int:
    """The search beam ``make bench`` picked for vectors of width ``dim``."""
    return WIDE_EF if dim > _WIDE_DIM else DEFAULT_EF


def _file_width(file: Path) -> int | None:
    """Vector width recorded in an hnswlib file header, None if the header is unreadable.

    The header starts with six ``size_t`` fields; the vector data of an element sits
    between ``offsetData`` (field 6) and ``label_offset`` (field 5), as float32.
    """
    with file.open("rb") as fh:
        head = fh.read(48)
    if len(head) < 48:
        return None
    fields = struct.unpack("<6Q", head)
    label_offset, offset_data = fields[4], fields[5]
    width, rest = divmod(label_offset - offset_data, 4)
    return int(width) if label_offset > offset_data and rest == 0 else None


def _check(vectors: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConfigError(f"vectors must be a non-empty 2-D array [n, d], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError("vectors contain NaN or infinite values; fix the embeddings first")
    return arr


class HnswIndex:
    """An hnswlib graph over the rows of a matrix, cosine similarity.

    Build with :meth:`build`, persist with :meth:`save`, read back with
    :meth:`load`. Queries are thread-safe once built or loaded (no items are
    added after that).
    """

    kind: IndexKind = "hnsw"
    offload = True  # milliseconds per query at scale, GIL released: worth a thread

    def __init__(self, index: Any, *, dim: int, ef: int, seed: int | None,
                 path: Path | None = None) -> None:
        self._index = index
        self.dim = int(dim)
        self.ef = int(ef)
        self.seed = seed
        self.path = path
        #: Seconds :meth:`build` took (None for a loaded index).
        self.build_seconds: float | None = None
        index.set_ef(self.ef)
        index.set_num_threads(1)

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        *,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef: int | None = None,
        seed: int = DEFAULT_SEED,
        n_threads: int = DEFAULT_THREADS,
        batch: int = 100_000,
        progress: Any = None,
    ) -> HnswIndex:
        """Build a graph over the rows of ``vectors``.

        Args:
            vectors: float32 [n, d]; row i becomes position i.
            m: Links per node (more: better recall, bigger index).
            ef_construction: Build-time beam width.
            ef: Default search beam (None: :func:`default_ef` of the width).
            seed: hnswlib's level-assignment seed. With ``n_threads > 1`` the
                insertion order, and so the graph, varies slightly between builds.
            n_threads: Build threads.
            batch: Rows inserted per call (bounds the temporary float32 copy).
            progress: Called with the number of rows inserted so far, if given.

        Returns:
            The built index.
        """
        import hnswlib

        t0 = time.perf_counter()
        arr = _check(vectors)
        n, dim = arr.shape
        if m < 2 or ef_construction < 1:
            raise ConfigError(f"need m >= 2 and ef_construction >= 1, got {m}, {ef_construction}")
        index = hnswlib.Index(space="cosine", dim=dim)
        index.init_index(max_elements=n, ef_construction=int(ef_construction), M=int(m),
                         random_seed=int(seed))
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            index.add_items(arr[start:stop], np.arange(start, stop), num_threads=int(n_threads))
            if progress is not None:
                progress(stop)
        built = cls(index, dim=dim, ef=ef or default_ef(dim), seed=seed)
        built.build_seconds = time.perf_counter() - t0
        return built

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to ``path`` atomically (temp file, then rename)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        self._index.save_index(str(tmp))
        os.replace(tmp, target)
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], dim: int, *, ef: int | None = None) -> HnswIndex:
        """Read a saved index into memory.

        Args:
            path: File written by :meth:`save`.
            dim: Vector width the index was built with.
            ef: Search beam (None: :func:`default_ef` of the width).

        Raises:
            BundleError: The file is missing, unreadable or of another width.
        """
        import hnswlib

        file = Path(path)
        if not file.is_file():
            raise BundleError(
                f"HNSW index file {file} does not exist; rebuild the bundle with HNSW indexes "
                "(`hybridrec train --hnsw`) or set HYBRIDREC_ANN_BACKEND=annoy"
            )
        width = _file_width(file)
        if width != int(dim):
            raise BundleError(
                f"cannot load HNSW index {file} as cosine vectors of width {dim}: its header "
                f"says {'an unreadable width' if width is None else f'width {width}'}; the file "
                "is corrupted or was built over other vectors"
            )
        index = hnswlib.Index(space="cosine", dim=int(dim))
        try:
            index.load_index(str(file))
        except RuntimeError as exc:
            raise BundleError(
                f"cannot load HNSW index {file} as cosine vectors of width {dim}: {exc}; "
                "the file is corrupted or was built with another dimension"
            ) from exc
        return cls(index, dim=dim, ef=ef or default_ef(dim), seed=None, path=file)

    def set_ef(self, ef: int) -> None:
        """Change the search beam (not while other threads query this index)."""
        self.ef = int(ef)
        self._index.set_ef(self.ef)

    @property
    def n_items(self) -> int:
        """Number of indexed vectors."""
        return int(self._index.get_current_count())

    @property
    def params(self) -> dict[str, Any]:
        """Index parameters for manifests and logs."""
        return {
            "metric": "cosine",
            "kind": "hnsw",
            "dim": self.dim,
            "M": int(self._index.M),
            "ef_construction": int(self._index.ef_construction),
            "ef": self.ef,
            "n_items": self.n_items,
            "seed": self.seed,
        }

    def query(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k neighbours of one vector.

        Args:
            vector: float32 [d].
            k: Neighbours wanted (the beam is ``max(ef, k)``).

        Returns:
            (ids int64 [m], scores float32 [m]) with m = min(k, n_items), best
            first; scores are cosine similarities.
        """
        vec = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if vec.shape[1] != self.dim:
            raise ConfigError(f"query vector has width {vec.shape[1]}, the index has {self.dim}")
        ids, scores = self.query_batch(vec, k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def query_batch(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k for several vectors.

        Args:
            vectors: float32 [q, d].
            k: Neighbours wanted per query.

        Returns:
            (ids int64 [q, k], scores float32 [q, k]); rows with fewer than k
            hits are padded with id -1 and score -inf.
        """
        arr = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ConfigError(f"queries must be [q, {self.dim}], got shape {arr.shape}")
        want = max(int(k), 0)
        ids = np.full((arr.shape[0], want), -1, dtype=np.int64)
        scores = np.full((arr.shape[0], want), -np.inf, dtype=np.float32)
        m = min(want, self.n_items)
        while m > 0:
            try:
                labels, dist = self._index.knn_query(arr, k=m, num_threads=1)
            except RuntimeError:
                # A graph walk found fewer than m nodes (tiny or oddly shaped graphs):
                # ask for fewer rather than fail the request.
                m //= 2
                continue
            ids[:, :m] = labels
            scores[:, :m] = np.clip(1.0 - dist, -1.0, 1.0)
            break
        return ids, scores

    def unload(self) -> None:
        """Drop the graph (the object is unusable afterwards)."""
        self._index = None
