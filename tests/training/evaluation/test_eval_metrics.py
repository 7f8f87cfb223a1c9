"""Ranking metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from training.evaluation.metrics import (
    coverage_at_k,
    hit_rate_at_k,
    hits_matrix,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    topk_indices,
    user_metrics,
)


def test_topk_indices_best_first_ties_by_lower_index() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -1.0], [3.0, 2.0, 1.0, 0.0, 5.0]])
    assert topk_indices(scores, 3).tolist() == [[1, 3, 2], [4, 0, 1]]
    assert topk_indices(scores, 10).shape == (2, 5)
    assert topk_indices(scores, 5)[1].tolist() == [4, 0, 1, 2, 3]


def test_topk_matches_full_sort_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((20, 300))
    expect = np.argsort(-scores, axis=1)[:, :25]
    assert np.array_equal(topk_indices(scores, 25), expect)


def test_hits_matrix_dense_and_sparse_agree() -> None:
    rel = np.array([[0, 1, 0, 1], [1, 0, 0, 0]])
    top = np.array([[3, 2], [1, 0]])
    assert hits_matrix(top, rel).tolist() == [[True, False], [False, True]]
    assert hits_matrix(top, sp.csr_matrix(rel)).tolist() == [[True, False], [False, True]]


def test_recall_divides_by_all_relevant_items() -> None:
    hits = np.array([[True, False, True, False]])
    assert recall_at_k(hits, np.array([4]), 2)[0] == pytest.approx(0.25)
    assert recall_at_k(hits, np.array([4]), 4)[0] == pytest.approx(0.5)
    # More relevant items than K: still hits / |relevant| (RecBole), not / K.
    assert recall_at_k(np.ones((1, 2), bool), np.array([5]), 2)[0] == pytest.approx(0.4)


def test_ndcg_hand_computed() -> None:
    hits = np.array([[False, True, False], [True, False, True], [True, False, True]])
    got = ndcg_at_k(hits, np.array([1, 5, 2]), 3)
    dcg = 1.0 + 1.0 / math.log2(4)
    assert got[0] == pytest.approx(1.0 / math.log2(3))
    # |rel| = 5 > K = 3: ideal DCG over 3 positions.
    assert got[1] == pytest.approx(dcg / (1.0 + 1.0 / math.log2(3) + 0.5))
    assert got[2] == pytest.approx(dcg / (1.0 + 1.0 / math.log2(3)))
    perfect = ndcg_at_k(np.array([[True, True, False]]), np.array([2]), 3)
    assert perfect[0] == pytest.approx(1.0)


def test_hit_rate_and_mrr() -> None:
    hits = np.array([[False, False, True], [False, False, False], [True, True, False]])
    assert hit_rate_at_k(hits, 3).tolist() == [1.0, 0.0, 1.0]
    assert hit_rate_at_k(hits, 2).tolist() == [0.0, 0.0, 1.0]
    assert mrr_at_k(hits, 3) == pytest.approx([1 / 3, 0.0, 1.0])
    assert mrr_at_k(hits, 2) == pytest.approx([0.0, 0.0, 1.0])


def test_coverage_counts_distinct_items_over_candidates() -> None:
    top = np.array([[0, 1, 7], [1, 2, 7]])
    assert coverage_at_k(top, 2, 10) == pytest.approx(0.3)
    assert coverage_at_k(top, 3, 10) == pytest.approx(0.4)
    assert coverage_at_k(np.array([[0, -1]]), 2, 4) == pytest.approx(0.25)


def test_user_metrics_keys_and_values() -> None:
    hits = np.array([[True, False, False, False]])
    out = user_metrics(hits, np.array([2]), ks=(1, 4))
    assert set(out) == {f"{m}@{k}" for m in ("recall", "ndcg", "hit", "mrr") for k in (1, 4)}
    assert out["recall@1"][0] == pytest.approx(0.5)
    assert out["ndcg@1"][0] == pytest.approx(1.0)
    assert out["ndcg@4"][0] == pytest.approx(1.0 / (1.0 + 1.0 / math.log2(3)))
    assert out["mrr@4"][0] == pytest.approx(1.0)
