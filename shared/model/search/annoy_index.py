"""Approximate nearest neighbours over item vectors (Annoy, angular metric).

Positions in an index are item *indices* ``0..n-1`` (row numbers of the vector
matrix it was built from); mapping them to item ids is the caller's job.
Scores are cosine similarities: Annoy's angular distance is
``d = sqrt(2 - 2 cos)``, so ``cos = 1 - d**2 / 2``.

Also holds the exact (brute-force) search used to measure recall.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shared.contracts.errors import BundleError, ConfigError
from shared.model.search import IndexKind

METRIC: Literal["angular"] = "angular"
DEFAULT_N_TREES = 50
DEFAULT_SEED = 42
DEFAULT_N_JOBS = 2
_EXACT_BLOCK_ELEMENTS = 1 << 24  # ~64 MB of float32 similarities per block

#: Catalogues up to this size keep the small-catalogue parameters below.
LARGE_CATALOGUE = 100_000
DEFAULT_SEARCH_K = 20_000
#: Vectors wider than this (BERT content, 384-d) get the wide-vector parameters.
WIDE_DIM = 128
#: Large catalogues, item-tower vectors: the cheapest setting with recall@100 >= 0.95
#: that ``make bench`` (bench/ann_bench.py) finds on 1M x 64 clustered item vectors with
#: real query-tower user vectors. Trees barely matter at a fixed search_k, and fewer trees
#: mean a smaller index and a faster build (figures:
#: docs/scaling.md#ann-search-1m-x-64-item-tower-vectors-top-100).
LARGE_N_TREES = 25
LARGE_SEARCH_K = 40_000
#: Large catalogues, wide vectors (384-d content): build time grows with width x trees,
#: so fewer trees (figures: docs/scaling.md#content-bert-index-1m-x-384).
LARGE_WIDE_N_TREES = 25
LARGE_WIDE_SEARCH_K = 20_000


def params_for_catalogue(n_items: int, dim: int = 64) -> tuple[int, int]:
    """Default ``(n_trees, search_k)`` of an index over ``n_items`` vectors of width ``dim``.

    Up to :data:`LARGE_CATALOGUE` items: 50 trees and search_k 20,000 (nearly
    exact at that size). Above it: the benchmark's pick for recall@100 >= 0.95 at
    the lowest latency for item-tower vectors, and a build-time bound for wide ones.
    """
    if n_items <= LARGE_CATALOGUE:
        return DEFAULT_N_TREES, DEFAULT_SEARCH_K
    if dim > WIDE_DIM:
        return LARGE_WIDE_N_TREES, LARGE_WIDE_SEARCH_K
    return LARGE_N_TREES, LARGE_SEARCH_K


def _check_matrix(vectors: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be a 2-D array [n, d], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} contains NaN or infinite values; fix the embeddings first")
    return arr


def _cosine(distances: list[float]) -> np.ndarray:
    d = np.asarray(distances, dtype=np.float32)
    return np.clip(1.0 - d * d / 2.0, -1.0, 1.0).astype(np.float32)


class AnnIndex:
    """An Annoy index with the angular metric.

    Build with :meth:`build`, persist with :meth:`save`, reopen (memory-mapped)
    with :meth:`load`. Querying is thread-safe once built or loaded.
    """

    kind: IndexKind = "annoy"
    offload = True  # milliseconds per query at scale, GIL released: worth a thread

    def __init__(
        self,
        index: Any,
        *,
        dim: int,
        n_trees: int,
        search_k: int,
        seed: int | None,
        path: Path | None = None,
    ) -> None:
        self._index = index
        self.dim = int(dim)
        self.n_trees = int(n_trees)
        self.search_k = int(search_k)
        self.seed = seed
        self.path = path

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        *,
        n_trees: int = DEFAULT_N_TREES,
        seed: int = DEFAULT_SEED,
        search_k: int = -1,
        on_disk_path: str | os.PathLike[str] | None = None,
        n_jobs: int = DEFAULT_N_JOBS,
    ) -> AnnIndex:
        """Build an index over the rows of ``vectors``.

        Args:
            vectors: float32 [n, d]; row i becomes position i.
            n_trees: Number of random-projection trees (more: better recall,
                bigger file).
            seed: Annoy's random seed.
            search_k: Default nodes inspected per query (-1: Annoy's default,
                ``k * n_trees``).
            on_disk_path: Build straight into this file instead of RAM (for
                indexes bigger than memory); the file is the saved index.
            n_jobs: Build threads. A fixed count (default 2) keeps the trees the
                same on every machine (Annoy seeds thread i with ``seed + i``);
                -1 uses all cores.

        Returns:
            The built index.
        """
        from annoy import AnnoyIndex

        arr = _check_matrix(vectors, "vectors")
        n, dim = arr.shape
        if n == 0 or dim == 0:
            raise ConfigError(f"cannot build an index from an empty matrix of shape {arr.shape}")
        if n_trees < 1:
            raise ConfigError(f"n_trees must be >= 1, got {n_trees}")
        index = AnnoyIndex(dim, METRIC)
        index.set_seed(int(seed))
        path = None
        if on_disk_path is not None:
            path = Path(on_disk_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            index.on_disk_build(str(path))
        for i in range(n):
            index.add_item(i, arr[i])
        index.build(int(n_trees), n_jobs=int(n_jobs))
        return cls(index, dim=dim, n_trees=n_trees, search_k=search_k, seed=seed, path=path)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index to ``path`` (atomically: temp file, then rename).

        After saving, the index serves queries from the memory-mapped file.
        For an index built with ``on_disk_path`` the file already exists; saving
        to that same path is a no-op, to another path copies it.

        Returns:
            The path written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.path is not None and self.path.exists():
            if target.resolve() == self.path.resolve():
                return target
            import shutil

            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, target)
            return target
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        self._index.save(str(tmp))  # Annoy then mmaps tmp; the inode survives the rename
        os.replace(tmp, target)
        self.path = target
        return target

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        dim: int,
        *,
        search_k: int = -1,
        prefault: bool = False,
    ) -> AnnIndex:
        """Memory-map a saved index.

        Args:
            path: File written by :meth:`save` or an on-disk build.
            dim: Vector width the index was built with.
            search_k: Default nodes inspected per query (-1: ``k * n_trees``).
            prefault: Read the whole file into the page cache now.

        Raises:
            BundleError: The file is missing or does not match ``dim``.
        """
        from annoy import AnnoyIndex

        file = Path(path)
        if not file.is_file():
            raise BundleError(
                f"Annoy index file {file} does not exist; rebuild the artifacts with "
                "`hybridrec train`"
            )
        index = AnnoyIndex(int(dim), METRIC)
        try:
            index.load(str(file), prefault=prefault)
        except OSError as exc:
            raise BundleError(
                f"cannot load Annoy index {file} as {METRIC} vectors of width {dim}: {exc}; "
                "the file is corrupted or was built with another dimension"
            ) from exc
        return cls(
            index,
            dim=dim,
            n_trees=index.get_n_trees(),
            search_k=search_k,
            seed=None,
            path=file,
        )

    @property
    def n_items(self) -> int:
        """Number of indexed vectors."""
        return int(self._index.get_n_items())

    @property
    def params(self) -> dict[str, Any]:
        """Index parameters for manifests and logs."""
        return {
            "metric": METRIC,
            "dim": self.dim,
            "n_trees": self.n_trees,
            "search_k": self.search_k,
            "n_items": self.n_items,
            "seed": self.seed,
        }

    def query(
        self, vector: np.ndarray, k: int, *, search_k: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k neighbours of one vector.

        Args:
            vector: float32 [d].
            k: Neighbours wanted.
            search_k: Nodes to inspect (None: the index default).

        Returns:
            (ids int64 [m], scores float32 [m]) with m = min(k, n_items), best
            first; scores are cosine similarities.
        """
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim:
            raise ConfigError(f"query vector has width {vec.shape[0]}, the index has {self.dim}")
        if k < 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        sk = self.search_k if search_k is None else int(search_k)
        ids, dist = self._index.get_nns_by_vector(
            vec.tolist(), int(k), search_k=sk, include_distances=True
        )
        return np.asarray(ids, dtype=np.int64), _cosine(dist)

    def query_batch(
        self, vectors: np.ndarray, k: int, *, search_k: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k for several vectors.

        Args:
            vectors: float32 [q, d].
            k: Neighbours wanted per query.
            search_k: Nodes to inspect (None: the index default).

        Returns:
            (ids int64 [q, k], scores float32 [q, k]); rows with fewer than k
            hits are padded with id -1 and score -inf.
        """
        arr = _check_matrix(vectors, "queries")
        ids = np.full((arr.shape[0], max(k, 0)), -1, dtype=np.int64)
        scores = np.full((arr.shape[0], max(k, 0)), -np.inf, dtype=np.float32)
        for row in range(arr.shape[0]):
            got_ids, got_scores = self.query(arr[row], k, search_k=search_k)
            ids[row, : got_ids.shape[0]] = got_ids
            scores[row, : got_scores.shape[0]] = got_scores
        return ids, scores

    def unload(self) -> None:
        """Release the memory map / build memory."""
        self._index.unload()


def _normalise(arr: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms > 0, norms, 1.0)


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k by brute force, in blocks of queries.

    Args:
        vectors: float32 [n, d] indexed vectors.
        queries: float32 [q, d] query vectors.
        k: Neighbours wanted (capped at n).

    Returns:
        (ids int64 [q, m], scores float32 [q, m]) with m = min(k, n), best
        first; ties broken by the smaller id.
    """
    base = _normalise(_check_matrix(vectors, "vectors"))
    qs = _normalise(_check_matrix(queries, "queries"))
    if base.shape[1] != qs.shape[1]:
        raise ConfigError(f"queries have width {qs.shape[1]}, vectors have {base.shape[1]}")
    n = base.shape[0]
    m = max(0, min(int(k), n))
    ids = np.zeros((qs.shape[0], m), dtype=np.int64)
    scores = np.zeros((qs.shape[0], m), dtype=np.float32)
    if m == 0:
        return ids, scores
    block = max(1, _EXACT_BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, qs.shape[0], block):
        sims = qs[start : start + block] @ base.T  # [b, n]
        if m < n:
            cand = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        else:
            cand = np.broadcast_to(np.arange(n), sims.shape)
        cand_scores = np.take_along_axis(sims, cand, axis=1)
        for r in range(cand.shape[0]):
            order = np.lexsort((cand[r], -cand_scores[r]))
            ids[start + r] = cand[r][order]
            scores[start + r] = cand_scores[r][order]
    return ids, scores


def recall_at_k(ann_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of the exact neighbours that the ANN search found.

    Args:
        ann_ids: int [q, k] (or [k]) approximate results; -1 means no hit.
        exact_ids: int [q, k] (or [k]) exact results.

    Returns:
        Recall in [0, 1] averaged over queries (1.0 for no queries).
    """
    ann = np.atleast_2d(np.asarray(ann_ids))
    exact = np.atleast_2d(np.asarray(exact_ids))
    if ann.shape[0] != exact.shape[0]:
        raise ConfigError(f"ann_ids has {ann.shape[0]} queries, exact_ids has {exact.shape[0]}")
    if exact.shape[0] == 0:
        return 1.0
    total = 0.0
    for a, e in zip(ann, exact, strict=True):
        truth = set(e[e >= 0].tolist())
        if not truth:
            total += 1.0
            continue
        total += len(truth.intersection(a[a >= 0].tolist())) / len(truth)
    return total / exact.shape[0]
