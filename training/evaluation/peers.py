"""More peers for the harness: implicit ALS, a cold-item popularity predictor, an oracle.

LightFM is not among them: ``pip install lightfm`` (1.17, sdist only) fails to
build here (see docs/evaluation.md for the error).

* :class:`ALS` – implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008)
  from the ``implicit`` package; factors, regularization and alpha tuned on
  validation NDCG@10 with :func:`~training.evaluation.tuning.grid_search`.
* :class:`ContentPopularity` – for cold items: a ridge regression predicts an
  item's log train popularity from its features (genres, year, content vector);
  items are ranked by ``user genre affinity ** beta * predicted popularity``.
  Warm items get out-of-fold predictions, so ``beta`` and the ridge weight are
  tuned on validation without an item ever predicting itself.
* :class:`PopularityOracle` – **not a model**: ranks by the number of *test*
  interactions, a ceiling for any popularity-based cold-item ranker. It reads
  ``data.test`` by design and is marked as an oracle in every report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from shared.contracts.errors import ConfigError
from training.evaluation.base import EvalData
from training.evaluation.tuning import geometric, grid_search

ORACLE_PREFIX = "Oracle"


def genre_matrix(data: EvalData) -> sp.csr_matrix:
    """[n_items, n_genres] binary item-genre matrix of ``data.items``."""
    genres = [
        [g for g in (v if isinstance(v, list | tuple | np.ndarray) else [])
         if isinstance(g, str) and g and g != "(no genres listed)"]
        for v in data.items.get("genres", [[]] * data.n_items)
    ]
    vocab = sorted({g for gs in genres for g in gs})
    col = {g: j for j, g in enumerate(vocab)}
    rows = np.repeat(np.arange(data.n_items), [len(gs) for gs in genres])
    cols = np.array([col[g] for gs in genres for g in gs], dtype=np.int64)
    return sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                         shape=(data.n_items, max(len(vocab), 1)))


class _FactorScorer:
    """``U[u] @ V.T`` as a Recommender, for tuning."""

    def __init__(self, name: str, users: np.ndarray, items: np.ndarray) -> None:
        self.name = name
        self.users = users
        self.items = items

    def fit(self, data: EvalData) -> None:  # pragma: no cover - never called
        """Nothing to fit."""

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 dot products."""
        return np.asarray(self.users[user_idx] @ self.items.T, dtype=np.float32)


class ALS:
    """Implicit ALS (the ``implicit`` package), tuned on validation.

    Args:
        factors: Grid of latent dimensions (widened x2 / ÷2).
        regularization: Grid of L2 weights (widened x10 / ÷10).
        alpha: Grid of confidence weights (widened x3 / ÷3).
        iterations: ALS sweeps.
        seed: Random state.
        name: Report name.
    """

    def __init__(self, factors: tuple[int, ...] = (32, 64, 128),
                 regularization: tuple[float, ...] = (0.01, 0.1, 1.0),
                 alpha: tuple[float, ...] = (1.0, 5.0, 20.0), iterations: int = 15,
                 seed: int = 42, name: str = "ALS") -> None:
        self.name = name
        self.grid = {"factors": factors, "regularization": regularization, "alpha": alpha}
        self.iterations = int(iterations)
        self.seed = int(seed)
        self.hyperparameters: dict[str, Any] = {}
        self._scorer: _FactorScorer | None = None

    def _train(self, x: sp.csr_matrix, point: dict[str, Any]) -> _FactorScorer:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit's advice: BLAS threads fight its own
            model = AlternatingLeastSquares(
                factors=int(point["factors"]), regularization=float(point["regularization"]),
                alpha=float(point["alpha"]), iterations=self.iterations, random_state=self.seed,
                calculate_training_loss=False, num_threads=1)
            model.fit(x, show_progress=False)
        return _FactorScorer(self.name, np.asarray(model.user_factors, dtype=np.float32),
                             np.asarray(model.item_factors, dtype=np.float32))

    def fit(self, data: EvalData) -> None:
        """Grid-search the factors/regularization/alpha on validation NDCG@10."""
        x = sp.csr_matrix(data.train, dtype=np.float32)
        widen = {"factors": geometric(2.0, lower=4, upper=1024, integer=True),
                 "regularization": geometric(10.0, lower=1e-5, upper=1e4),
                 "alpha": geometric(3.0, lower=0.01, upper=1e4)}
        result, scorer = grid_search(self.grid, lambda p: self._train(x, p), data,
                                     widen=widen, desc=f"{self.name} on valid")
        assert isinstance(scorer, _FactorScorer)
        self._scorer = scorer
        self.hyperparameters = {**result.best, "iterations": self.iterations,
                                "search": result.to_dict()}

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 user-item dot products."""
        if self._scorer is None:
            raise ConfigError(f"{self.name} is not fitted; call fit(data) first.")
        return self._scorer.score(np.asarray(user_idx, dtype=np.int64))


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Ridge weights (last column of ``x`` = bias, unpenalised)."""
    reg = lam * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(x.T @ x + reg, x.T @ y)


class ContentPopularity:
    """Predicted popularity from item features times the user's genre affinity.

    Args:
        content: Optional [n_items, D] content vectors (BERT) used as features
            next to genres and year.
        betas: Grid of affinity exponents (0 = predicted popularity alone).
        ridge: Grid of ridge weights.
        folds: Folds of the out-of-fold predictions for warm items.
        seed: Fold assignment seed.
        name: Report name.
    """

    def __init__(self, content: np.ndarray | None = None,
                 betas: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0),
                 ridge: tuple[float, ...] = (1.0, 10.0, 100.0), folds: int = 5,
                 seed: int = 42, name: str = "ContentPopularity") -> None:
        self.name = name
        self.content = None if content is None else np.asarray(content, dtype=np.float64)
        self.grid = {"beta": betas, "ridge": ridge}
        self.folds = int(folds)
        self.seed = int(seed)
        self.hyperparameters: dict[str, Any] = {}
        self._scores = np.zeros((0, 0), dtype=np.float32)

    def _features(self, data: EvalData) -> np.ndarray:
        g = genre_matrix(data).toarray().astype(np.float64)
        year = data.items["year"] if "year" in data.items.columns else None
        yr = np.zeros(data.n_items) if year is None else np.asarray(
            year.astype("Float64").fillna(np.nan).to_numpy(np.float64, na_value=np.nan))
        known = np.isfinite(yr)
        mean_year = float(np.nanmean(yr)) if known.any() else 0.0
        yr = np.where(known, yr, mean_year)
        parts = [g, ((yr - mean_year) / 20.0)[:, None], (~known).astype(np.float64)[:, None]]
        if self.content is not None:
            parts.append(self.content)
        parts.append(np.ones((data.n_items, 1)))
        return np.hstack(parts)

    def _predict(self, data: EvalData, feats: np.ndarray, lam: float) -> np.ndarray:
        """Log-popularity predictions: out-of-fold for train items, full fit for the rest."""
        counts = np.asarray(data.train.sum(axis=0)).ravel()
        warm = np.flatnonzero(counts > 0)
        y = np.log1p(counts)
        pred = np.zeros(data.n_items)
        cold = np.setdiff1d(np.arange(data.n_items), warm)
        pred[cold] = feats[cold] @ _ridge(feats[warm], y[warm], lam)
        fold = np.random.default_rng(self.seed).integers(0, self.folds, len(warm))
        for f in range(self.folds):
            tr, te = warm[fold != f], warm[fold == f]
            pred[te] = feats[te] @ _ridge(feats[tr], y[tr], lam)
        return pred

    def fit(self, data: EvalData) -> None:
        """Ridge on train popularity; beta and the ridge weight tuned on validation."""
        feats = self._features(data)
        g = genre_matrix(data)
        x = sp.csr_matrix(data.train, dtype=np.float32)
        user_genre = np.asarray((x @ g).toarray(), dtype=np.float64)
        share = user_genre / np.maximum(user_genre.sum(axis=1, keepdims=True), 1.0)
        n_genres = np.maximum(np.asarray(g.sum(axis=1)).ravel(), 1.0)
        affinity = np.asarray((g @ share.T).T) / n_genres[None, :] + 1e-3  # [U, I]
        preds: dict[float, np.ndarray] = {}

        def make(point: dict[str, Any]) -> _DenseScorer:
            lam = float(point["ridge"])
            if lam not in preds:
                preds[lam] = self._predict(data, feats, lam)
            s = float(point["beta"]) * np.log(affinity) + preds[lam][None, :]
            return _DenseScorer(self.name, s.astype(np.float32))

        widen = {"beta": geometric(2.0, upper=64.0), "ridge": geometric(10.0, lower=1e-4,
                                                                        upper=1e6)}
        result, scorer = grid_search(self.grid, make, data, widen=widen,
                                     desc=f"{self.name} on valid")
        assert isinstance(scorer, _DenseScorer)
        self._scores = scorer.scores
        self.hyperparameters = {**result.best, "content_features": self.content is not None,
                                "search": result.to_dict()}

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 ``beta * log affinity + predicted log popularity``."""
        return self._scores[np.asarray(user_idx, dtype=np.int64)]


class _DenseScorer:
    def __init__(self, name: str, scores: np.ndarray) -> None:
        self.name = name
        self.scores = scores

    def fit(self, data: EvalData) -> None:  # pragma: no cover - never called
        """Nothing to fit."""

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        return self.scores[np.asarray(user_idx, dtype=np.int64)]


class PopularityOracle:
    """A ceiling, not a model: ranks items by their number of test interactions.

    It reads ``data.test`` on purpose; reports mark it and it is never a peer.
    """

    def __init__(self, name: str = f"{ORACLE_PREFIX}: test popularity (ceiling, reads test)"
                 ) -> None:
        self.name = name
        self.hyperparameters: dict[str, Any] = {"reads_test": True}
        self._counts = np.zeros(0, dtype=np.float32)

    def fit(self, data: EvalData) -> None:
        """Count test interactions per item (the oracle's only input)."""
        self._counts = np.asarray(data.test.sum(axis=0), dtype=np.float32).ravel()

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 test counts."""
        return np.tile(self._counts, (len(user_idx), 1))
