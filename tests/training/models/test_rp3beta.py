"""RP3beta's neighbour table against the formula computed densely, and its scores."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from shared.contracts.errors import ConfigError
from shared.model.item_knn import score_from_history
from training.models.rp3beta import RP3betaRecommender, build_rp3beta


def _dense_rp3beta(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    x = (x > 0).astype(np.float64)
    p_ui = x / np.maximum(x.sum(axis=1, keepdims=True), 1e-12)
    p_iu = x.T / np.maximum(x.T.sum(axis=1, keepdims=True), 1e-12)
    w = (p_iu**alpha) @ (p_ui**alpha)
    pop = x.sum(axis=0)
    w = w / np.where(pop > 0, pop**beta, np.inf)[None, :]
    np.fill_diagonal(w, 0.0)
    return w


@pytest.mark.parametrize(("alpha", "beta", "block"), [(1.0, 0.6, 1024), (0.7, 0.3, 3)])
def test_table_is_the_formulas_top_k(alpha: float, beta: float, block: int) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((40, 25)) < 0.2).astype(np.float32)
    x[:, 24] = 0  # an item nobody interacted with: no neighbours, never a neighbour
    truth = _dense_rp3beta(x, alpha, beta)
    nb, w = build_rp3beta(sp.csr_matrix(x), alpha=alpha, beta=beta, k=6, block_size=block)
    assert nb.shape == (25, 6) and nb.dtype == np.int32 and w.dtype == np.float32
    for i in range(25):
        kept = nb[i][nb[i] >= 0]
        assert i not in kept and 24 not in kept
        positive = np.flatnonzero(truth[i] > 0)
        assert len(kept) == min(6, len(positive))
        # the kept weights are the formula's, best first, and no better item was left out
        np.testing.assert_allclose(w[i][: len(kept)], truth[i, kept], rtol=1e-5)
        assert np.all(np.diff(w[i][: len(kept)]) <= 1e-12)
        if len(kept):
            left_out = np.setdiff1d(positive, kept)
            assert truth[i, left_out].max(initial=0.0) <= w[i][len(kept) - 1] + 1e-7
        assert np.all(w[i][len(kept):] == 0)
    assert np.all(nb[24] == -1)


def test_recommender_scores_are_the_served_tables_sums() -> None:
    rng = np.random.default_rng(1)
    x = sp.csr_matrix((rng.random((30, 20)) < 0.25).astype(np.float32))
    rec = RP3betaRecommender(k=8)
    rec.fit(SimpleNamespace(train=x))
    scores = rec.score(np.arange(30))
    for u in (0, 7, 19):
        hist = x[u].indices
        idx, got = score_from_history(hist, rec.neighbors, rec.weights, 20, k=20)
        assert len(idx) > 0
        # the service's candidates (history left out) carry the offline scores
        np.testing.assert_allclose(got, scores[u][idx], rtol=1e-5)
        rest = np.setdiff1d(np.arange(20), np.concatenate([idx, hist]))
        assert np.all(scores[u][rest] <= 0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="alpha > 0"):
        build_rp3beta(sp.csr_matrix(np.eye(3)), alpha=0.0)

