"""Strong, simple baselines implementing :class:`~training.evaluation.base.Recommender`.

* :class:`Popularity` – train interaction counts.
* :class:`ItemKNN` – cosine item-item similarity, top-k neighbours per item
  (k and shrink tuned on validation NDCG@10).
* :class:`EASE` – Steck's closed-form shallow autoencoder (λ tuned on validation).

Grids are searched with :func:`training.evaluation.tuning.grid_search`, which
widens an axis whose end is picked.
* :class:`GenrePopularity` – for cold items: the user's train counts of the item's
  genres, ties broken by train popularity.
* :class:`RandomRecommender` – seeded, batch-independent random scores.

Hyperparameters chosen during ``fit`` are exposed as ``hyperparameters`` (a dict)
and land in the report.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse as sp
from tqdm import tqdm

from shared.contracts.errors import ConfigError
from training.evaluation.base import EvalData
from training.evaluation.metrics import topk_indices
from training.evaluation.tuning import geometric, grid_search


class _MatScorer:
    """Scores ``X_u W`` for a train matrix X and item-item weights W (sparse or dense).

    Doubles as a :class:`~training.evaluation.base.Recommender` so that a candidate
    W can be evaluated on the valid stage while tuning.
    """

    def __init__(self, name: str, x: sp.csr_matrix, w: sp.csr_matrix | np.ndarray) -> None:
        self.name = name
        self.x = x
        self.w = w

    def fit(self, data: EvalData) -> None:  # pragma: no cover - never called
        """Nothing to fit."""

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 ``X_u W``."""
        s = self.x[user_idx] @ self.w
        return np.asarray(s.toarray() if sp.issparse(s) else s, dtype=np.float32)


def _train_counts(data: EvalData) -> np.ndarray:
    """[n_items] float32 number of train interactions per item."""
    return np.asarray(data.train.sum(axis=0), dtype=np.float32).ravel()


class Popularity:
    """Most-interacted items in train, the same list for every user."""

    def __init__(self, name: str = "Popularity") -> None:
        self.name = name
        self.hyperparameters: dict[str, Any] = {}
        self._counts = np.zeros(0, dtype=np.float32)

    def fit(self, data: EvalData) -> None:
        """Count train interactions per item."""
        self._counts = _train_counts(data)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 train counts."""
        return np.tile(self._counts, (len(user_idx), 1))


class ItemKNN:
    """Item-based collaborative filtering with cosine similarity on the binary train matrix.

    ``sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i|) sqrt(|U_j|) + shrink)``; for each item
    ``i`` only its ``k`` most similar items ``j`` are kept, and a user's score for
    ``i`` is the sum of ``sim(j, i)`` over the items ``j`` in their train history.

    Args:
        k: Neighbours per item; None tunes it on validation over ``k_grid``.
        k_grid: Candidates for ``k`` (widened by x2 / ÷2 when an end wins).
        shrink: Shrinkage added to the cosine denominator; None tunes it over
            ``shrink_grid`` (widened by x4 at the top; 0 is a natural bound).
        shrink_grid: Candidates for ``shrink``.
        block_size: Items per block when computing similarities (memory:
            ``n_items * block_size`` float32).
        name: Report name.
    """

    def __init__(
        self,
        k: int | None = None,
        *,
        k_grid: Sequence[int] = (25, 50, 100, 200),
        shrink: float | None = None,
        shrink_grid: Sequence[float] = (0.0, 10.0, 50.0),
        block_size: int = 1024,
        name: str = "ItemKNN",
    ) -> None:
        if k is None and not k_grid:
            raise ConfigError("ItemKNN needs k or a non-empty k_grid, got neither.")
        self.name = name
        self.k = k
        self.k_grid = tuple(int(v) for v in k_grid)
        self.shrink = shrink
        self.shrink_grid = tuple(float(v) for v in shrink_grid)
        self.block_size = int(block_size)
        self.hyperparameters: dict[str, Any] = {}
        self._x = sp.csr_matrix((0, 0), dtype=np.float32)
        self._w = sp.csr_matrix((0, 0), dtype=np.float32)

    def _neighbours(self, x: sp.csr_matrix, kmax: int, shrink: float
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``kmax`` neighbours per item: ([n_items, kmax] int64, [n_items, kmax] float32)."""
        n = x.shape[1]
        xc = sp.csc_matrix(x)
        xt = sp.csr_matrix(x.T)
        norms = np.sqrt(np.asarray(xc.power(2).sum(axis=0)).ravel()).astype(np.float32)
        nbr = np.zeros((n, kmax), dtype=np.int64)
        val = np.zeros((n, kmax), dtype=np.float32)
        starts = range(0, n, self.block_size)
        for start in tqdm(starts, desc=f"{self.name} similarities", file=sys.stderr,
                          leave=False, disable=len(starts) < 4):
            cols = np.arange(start, min(start + self.block_size, n))
            co = (xt @ xc[:, cols]).toarray().T.astype(np.float32)  # [b, n_items]
            denom = norms[cols][:, None] * norms[None, :] + shrink
            sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
            sim[np.arange(len(cols)), cols] = 0.0
            top = topk_indices(sim, kmax)
            nbr[cols] = top
            val[cols] = np.take_along_axis(sim, top, axis=1)
        return nbr, val

    @staticmethod
    def _weights(nbr: np.ndarray, val: np.ndarray, k: int) -> sp.csr_matrix:
        """[n_items, n_items] W with W[j, i] = sim(j, i) for j among i's top-k."""
        n = nbr.shape[0]
        cols = np.repeat(np.arange(n), k)
        w = sp.csr_matrix((val[:, :k].ravel(), (nbr[:, :k].ravel(), cols)), shape=(n, n))
        w.eliminate_zeros()
        return w

    def fit(self, data: EvalData) -> None:
        """Compute neighbourhoods; tune ``k`` and ``shrink`` on validation NDCG@10 if not given."""
        self._x = sp.csr_matrix(data.train, dtype=np.float32)
        n = data.n_items
        ks = (self.k,) if self.k is not None else self.k_grid
        ks = tuple(sorted({max(1, min(int(v), n - 1)) for v in ks}))
        shrinks = (self.shrink,) if self.shrink is not None else self.shrink_grid
        cache: dict[float, tuple[np.ndarray, np.ndarray, int]] = {}

        def make(point: dict[str, float]) -> _MatScorer:
            k, shrink = int(point["k"]), float(point["shrink"])
            if shrink not in cache or cache[shrink][2] < k:
                kmax = max(k, max(ks))
                cache[shrink] = (*self._neighbours(self._x, kmax, shrink), kmax)
            nbr, val, _ = cache[shrink]
            return _MatScorer(self.name, self._x, self._weights(nbr, val, k))

        widen = {}
        if self.k is None:
            widen["k"] = geometric(2.0, lower=1, upper=n - 1, integer=True)
        if self.shrink is None:
            widen["shrink"] = geometric(4.0, lower=1.0)
        if len(ks) == 1 and len(shrinks) == 1:
            scorer = make({"k": ks[0], "shrink": shrinks[0]})
            self.hyperparameters = {"k": int(ks[0]), "shrink": float(shrinks[0])}
        else:
            result, chosen = grid_search({"k": ks, "shrink": shrinks}, make, data,
                                         widen=widen, desc=f"{self.name} on valid")
            self.hyperparameters = {"k": int(result.best["k"]),
                                    "shrink": float(result.best["shrink"]),
                                    "search": result.to_dict()}
            assert isinstance(chosen, _MatScorer)
            scorer = chosen
        self._w = sp.csr_matrix(scorer.w)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 summed similarities to the user's train items."""
        return np.asarray((self._x[user_idx] @ self._w).toarray(), dtype=np.float32)


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck 2019), closed form.

    ``P = (XᵀX + λI)⁻¹``, ``B = I - P / diag(P)`` (column-wise), ``diag(B) = 0``;
    scores are ``X_u B``. Needs a dense [n_items, n_items] float64 matrix, so
    catalogues above ``max_items`` are refused unless ``allow_large``.

    Args:
        lam: L2 weight λ; None tunes it on validation over ``lambdas``.
        lambdas: Candidates for λ (widened by x2 / ÷2 when an end wins).
        max_items: Largest catalogue accepted without ``allow_large``.
        allow_large: Accept any catalogue size (memory ~ 3 * 8 * n_items² bytes).
        name: Report name.
    """

    def __init__(
        self,
        lam: float | None = None,
        *,
        lambdas: Sequence[float] = (50, 100, 200, 500, 1000, 2000),
        max_items: int = 20_000,
        allow_large: bool = False,
        name: str = "EASE",
    ) -> None:
        if lam is None and not lambdas:
            raise ConfigError("EASE needs lam or a non-empty lambdas grid, got neither.")
        self.name = name
        self.lam = lam
        self.lambdas = tuple(float(v) for v in lambdas)
        self.max_items = int(max_items)
        self.allow_large = allow_large
        self.hyperparameters: dict[str, Any] = {}
        self._x = sp.csr_matrix((0, 0), dtype=np.float32)
        self._b = np.zeros((0, 0), dtype=np.float32)

    @staticmethod
    def weights(gram: np.ndarray, lam: float) -> np.ndarray:
        """Closed-form item-item weights.

        Args:
            gram: [n_items, n_items] float64 XᵀX (not modified).
            lam: λ > 0.

        Returns:
            [n_items, n_items] float32 B with zero diagonal.
        """
        p = np.array(gram, dtype=np.float64, order="F")
        p[np.diag_indices_from(p)] += lam
        # Cholesky inverse (potrf + potri): half the flops of an LU inverse.
        c, info = scipy.linalg.lapack.dpotrf(p, lower=0, overwrite_a=1)
        if info != 0:
            raise ConfigError(f"EASE: X^T X + {lam} I is not positive definite (info={info}); "
                              "use a larger lambda.")
        p, info = scipy.linalg.lapack.dpotri(c, lower=0, overwrite_c=1)
        del c
        _mirror_upper(p)
        p /= -np.diag(p)[None, :]
        np.fill_diagonal(p, 0.0)
        return p.astype(np.float32)

    def fit(self, data: EvalData) -> None:
        """Solve for B; tune λ on validation NDCG@10 when not given.

        Raises:
            ConfigError: ``n_items > max_items`` without ``allow_large``.
        """
        n = data.n_items
        if n > self.max_items and not self.allow_large:
            gb = 3 * 8 * n * n / 1e9
            raise ConfigError(
                f"EASE needs O(n_items^2) memory: {n} items means dense {n}x{n} matrices "
                f"(about {gb:.1f} GB), above the limit of {self.max_items} items. Pass "
                "EASE(allow_large=True) if the machine has the memory, raise k_core to "
                "shrink the catalogue, or leave EASE out."
            )
        self._x = sp.csr_matrix(data.train, dtype=np.float32)
        gram = (self._x.T @ self._x).toarray().astype(np.float64)
        lams = (self.lam,) if self.lam is not None else self.lambdas

        def make(point: dict[str, float]) -> _MatScorer:
            return _MatScorer(self.name, self._x, self.weights(gram, float(point["lambda"])))

        if self.lam is not None:
            scorer = make({"lambda": self.lam})
            self.hyperparameters = {"lambda": float(self.lam)}
        else:
            result, chosen = grid_search({"lambda": lams}, make, data,
                                         widen={"lambda": geometric(2.0, lower=1e-3)},
                                         desc=f"{self.name} on valid")
            self.hyperparameters = {"lambda": float(result.best["lambda"]),
                                    "search": result.to_dict()}
            assert isinstance(chosen, _MatScorer)
            scorer = chosen
        self._b = np.asarray(scorer.w, dtype=np.float32)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 ``X_u B``."""
        return np.asarray(self._x[user_idx] @ self._b, dtype=np.float32)


def _mirror_upper(a: np.ndarray, block: int = 2048) -> None:
    """Copy the upper triangle of square ``a`` onto its lower triangle, in place, by blocks."""
    n = a.shape[0]
    for r0 in range(0, n, block):
        r1 = min(r0 + block, n)
        # rows r0:r1, columns < r0 come from the transposed upper block.
        a[r0:r1, :r0] = a[:r0, r0:r1].T
        sub = a[r0:r1, r0:r1]
        low = np.tril_indices(r1 - r0, -1)
        sub[low] = sub.T[low]


class GenrePopularity:
    """Content baseline for cold items: how often the user's train items share the item's genres.

    ``score(u, i) = sum over genres g of i of (# train items of u with genre g)``,
    plus ``pop(i) / (max pop + 1)`` (< 1) so train popularity breaks ties where
    known (held-out items have none).
    """

    def __init__(self, name: str = "GenrePopularity") -> None:
        self.name = name
        self.hyperparameters: dict[str, Any] = {}
        self._user_genre = np.zeros((0, 0), dtype=np.float32)
        self._item_genre = sp.csr_matrix((0, 0), dtype=np.float32)
        self._tiebreak = np.zeros(0, dtype=np.float32)

    def fit(self, data: EvalData) -> None:
        """Build the item-genre matrix and the users' genre counts."""
        genres = [
            [g for g in (v if isinstance(v, list | tuple | np.ndarray) else [])
             if isinstance(g, str) and g and g != "(no genres listed)"]
            for v in data.items.get("genres", [[]] * data.n_items)
        ]
        vocab = sorted({g for gs in genres for g in gs})
        col = {g: j for j, g in enumerate(vocab)}
        rows = np.repeat(np.arange(data.n_items), [len(gs) for gs in genres])
        cols = np.array([col[g] for gs in genres for g in gs], dtype=np.int64)
        self._item_genre = sp.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), (rows, cols)),
            shape=(data.n_items, max(len(vocab), 1)),
        )
        x = sp.csr_matrix(data.train, dtype=np.float32)
        self._user_genre = np.asarray((x @ self._item_genre).toarray(), dtype=np.float32)
        pop = _train_counts(data)
        self._tiebreak = (pop / (pop.max(initial=0.0) + 1.0)).astype(np.float32)
        self.hyperparameters = {"n_genres": len(vocab)}

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 genre affinity + popularity tie-break."""
        s = np.asarray(self._item_genre @ self._user_genre[user_idx].T, dtype=np.float32).T
        return s + self._tiebreak[None, :]


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _M64


class RandomRecommender:
    """Uniform random scores from a hash of (seed, user, item): deterministic, batch-independent.

    Args:
        seed: Seed.
        name: Report name.
    """

    def __init__(self, seed: int = 42, name: str = "Random") -> None:
        self.name = name
        self.seed = int(seed)
        self.hyperparameters: dict[str, Any] = {"seed": self.seed}
        self._n_items = 0

    def fit(self, data: EvalData) -> None:
        """Remember the catalogue size."""
        self._n_items = data.n_items

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 in [0, 1)."""
        u = _splitmix64(np.asarray(user_idx, dtype=np.uint64) ^ _splitmix64(
            np.array([self.seed], dtype=np.uint64)))
        z = _splitmix64(u[:, None] ^ np.arange(self._n_items, dtype=np.uint64)[None, :])
        return ((z >> np.uint64(40)).astype(np.float64) / float(1 << 24)).astype(np.float32)
