"""Item-to-item neighbours against a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shared.contracts.errors import ValidationError
from shared.model.item_knn import build_item_knn, knn_matrix, score_from_history

# users x items; item 3 is never co-rated with item 0
X = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0],
            [1, 1, 1, 0],
            [0, 1, 1, 1],
            [1, 0, 0, 0],
        ],
        dtype=np.float32,
    )
)
# item user counts: n0=3, n1=3, n2=2, n3=1; co-occurrence: 01=2, 02=1, 12=2, 13=1, 23=1


def _expected(shrink: float) -> np.ndarray:
    n = np.array([3, 3, 2, 1], dtype=np.float64)
    co = np.zeros((4, 4))
    for i, j, c in [(0, 1, 2), (0, 2, 1), (1, 2, 2), (1, 3, 1), (2, 3, 1)]:
        co[i, j] = co[j, i] = c
    return co / (np.sqrt(n)[:, None] * np.sqrt(n)[None, :] + shrink)


@pytest.mark.parametrize("block_size", [1, 3, None])
def test_neighbours_match_hand_computed(block_size: int | None) -> None:
    sim = _expected(shrink=1.0)
    nb, w = build_item_knn(X, k=3, shrink=1.0, block_size=block_size)
    assert nb.dtype == np.int32 and w.dtype == np.float32 and nb.shape == (4, 3)
    # item 0: neighbours 1 (2/4) then 2 (1/(sqrt6+1)); item 3 never co-occurs with 0 -> padding
    np.testing.assert_array_equal(nb[0], [1, 2, -1])
    np.testing.assert_allclose(w[0], [sim[0, 1], sim[0, 2], 0.0], rtol=1e-6)
    # item 1: 2 (2/(sqrt6+1)) > 0 (2/4) > 3 (1/(sqrt3+1))
    np.testing.assert_array_equal(nb[1], [2, 0, 3])
    np.testing.assert_allclose(w[1], sim[1, [2, 0, 3]], rtol=1e-6)
    np.testing.assert_array_equal(nb[3], [2, 1, -1])
    np.testing.assert_allclose(w[3], [sim[3, 2], sim[3, 1], 0.0], rtol=1e-6)


def test_k_truncates_and_pads() -> None:
    nb, w = build_item_knn(X, k=1, shrink=0.0)
    np.testing.assert_array_equal(nb[:, 0], [1, 2, 1, 2])
    nb, w = build_item_knn(X, k=6, shrink=0.0)
    assert (nb[:, 3:] == -1).all() and (w[:, 3:] == 0).all()


def test_candidate_side_truncation() -> None:
    # shrink 0: sim01=2/3, sim02=1/sqrt6, sim12=2/sqrt6, sim13=1/sqrt3, sim23=1/sqrt2
    # each candidate's single nearest item: 0->1, 1->2, 2->1, 3->2
    nb, w = build_item_knn(X, k=2, shrink=0.0, candidate_k=1)
    # inverted: item 1 recommends 2 (2/sqrt6) and 0 (2/3); item 2 recommends 1 and 3
    np.testing.assert_array_equal(nb, [[-1, -1], [2, 0], [1, 3], [-1, -1]])
    np.testing.assert_allclose(
        w, [[0, 0], [2 / np.sqrt(6), 2 / 3], [2 / np.sqrt(6), 1 / np.sqrt(2)], [0, 0]], rtol=1e-6
    )
    nb, _ = build_item_knn(X, k=1, shrink=0.0, candidate_k=1)
    np.testing.assert_array_equal(nb[:, 0], [-1, 2, 1, -1])
    # without candidate truncation each item keeps its own top-k
    nb, _ = build_item_knn(X, k=1, shrink=0.0, candidate_k=None)
    np.testing.assert_array_equal(nb[:, 0], [1, 2, 1, 2])


def test_score_from_history() -> None:
    nb, w = build_item_knn(X, k=3, shrink=1.0)
    sim = _expected(1.0)
    idx, score = score_from_history([0], nb, w, k=5)
    np.testing.assert_array_equal(idx, [1, 2])
    np.testing.assert_allclose(score, [sim[0, 1], sim[0, 2]], rtol=1e-6)
    # history {0, 3}: item 1 gets w(0,1) + w(3,1), item 2 gets w(0,2) + w(3,2)
    idx, score = score_from_history(np.array([3, 0]), nb, w, k=5)
    expected = {1: sim[0, 1] + sim[3, 1], 2: sim[0, 2] + sim[3, 2]}
    order = sorted(expected, key=lambda i: -expected[i])
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_allclose(score, [expected[i] for i in order], rtol=1e-6)
    idx, _ = score_from_history([3, 0], nb, w, k=1)
    assert idx.tolist() == order[:1]
    idx, _ = score_from_history([0], nb, w, k=5, exclude=[1])
    assert idx.tolist() == [2]
    idx, score = score_from_history([0, 3], nb, w, k=5, history_weights=[1.0, 0.0])
    np.testing.assert_allclose(score, [sim[0, 1], sim[0, 2]], rtol=1e-6)
    assert score_from_history([], nb, w)[0].size == 0
    with pytest.raises(ValidationError):
        score_from_history([4], nb, w)


def test_ties_break_by_lower_index() -> None:
    neighbors = np.array([[1, 2, 3], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]], dtype=np.int32)
    weights = np.array([[0.5, 0.5, 0.5], [0, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)
    idx, _ = score_from_history([0], neighbors, weights, k=2)
    assert idx.tolist() == [1, 2]


def test_knn_matrix_matches_scores() -> None:
    nb, w = build_item_knn(X, k=2, shrink=0.5)
    dense = (X @ knn_matrix(nb, w)).toarray()
    for user in range(X.shape[0]):
        hist = X[user].indices
        idx, score = score_from_history(hist, nb, w, k=4)
        np.testing.assert_allclose(dense[user, idx], score, rtol=1e-6)


def _dense_reference(hist, nb, w, n, k, exclude):  # type: ignore[no-untyped-def]
    """The catalogue-sized computation the sparse one must reproduce exactly."""
    valid = nb[hist] >= 0
    scores = np.bincount(nb[hist][valid], weights=w[hist].astype(np.float64)[valid], minlength=n)
    scores[hist] = 0.0
    scores[exclude] = 0.0
    positive = np.flatnonzero(scores > 0)
    order = np.lexsort((positive, -scores[positive]))[:k]
    return positive[order], scores[positive][order].astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("factor", [0, 10**9])
def test_sparse_and_dense_paths_equal_the_reference(
    seed: int, factor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.model.item_knn as knn

    monkeypatch.setattr(knn, "SPARSE_FACTOR", factor)  # 0: always sparse; 1e9: always dense
    rng = np.random.default_rng(seed)
    n, kk = 500, 12
    nb = rng.integers(-1, n, size=(n, kk)).astype(np.int32)
    # few distinct weights, so many ties to break by index
    w = rng.choice(np.array([0.25, 0.5, 1.0], dtype=np.float32), size=(n, kk))
    for _ in range(20):
        hist = rng.choice(n, size=int(rng.integers(1, 30)), replace=False)
        exclude = rng.choice(n, size=5, replace=False)
        k = int(rng.integers(1, 80))
        idx, score = score_from_history(hist, nb, w, n_items=n, k=k, exclude=exclude)
        ref_idx, ref_score = _dense_reference(hist, nb, w, n, k, exclude)
        np.testing.assert_array_equal(idx, ref_idx)
        np.testing.assert_array_equal(score, ref_score)


def test_weighted_cosine_when_not_binary() -> None:
    """``binary=False``: each pair's value (its confidence) weighs the cosine; the default
    still counts any value as 1."""
    w = X.multiply(np.array([[1], [2], [1], [3]], dtype=np.float32)).tocsr()  # per-user weights
    dense = w.toarray().astype(np.float64)
    norms = np.sqrt((dense**2).sum(axis=0))
    co = dense.T @ dense
    np.fill_diagonal(co, 0.0)
    sim = co / (norms[:, None] * norms[None, :] + 1.0)
    nb, wt = build_item_knn(w, k=3, shrink=1.0, candidate_k=None, binary=False)
    for i in range(4):
        want = [j for j in np.argsort(-sim[i], kind="stable") if sim[i, j] > 0][:3]
        np.testing.assert_array_equal(nb[i][: len(want)], want)
        np.testing.assert_allclose(wt[i][: len(want)], sim[i, want], rtol=1e-5)
    nb_bin, w_bin = build_item_knn(w, k=3, shrink=1.0, candidate_k=None)
    nb_x, w_x = build_item_knn(X, k=3, shrink=1.0, candidate_k=None)
    np.testing.assert_array_equal(nb_bin, nb_x)
    np.testing.assert_allclose(w_bin, w_x)
    assert not np.allclose(wt, w_x)
