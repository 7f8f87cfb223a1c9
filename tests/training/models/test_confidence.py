"""Pair confidence as sample weight, and dislikes/hides as the ranker's explicit negatives."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shared.model.candidates import CandidateSet
from training.models.confidence import (
    add_negatives,
    negatives_matrix,
    pair_confidence,
    weighted_train,
)
from training.models.ranking_sources import SparseEASERecommender
from training.models.two_tower import RetrievalTask
from training.models.two_tower_examples import build_training_examples


def _data(weights: list[float] | None) -> Any:
    inter = pd.DataFrame({"user_idx": [0, 0, 1, 1, 2], "item_idx": [0, 1, 1, 2, 0],
                          "timestamp": [1, 2, 3, 4, 5]})
    if weights is not None:
        inter["weight"] = np.asarray(weights, np.float32)
    train = sp.csr_matrix((np.ones(5, np.float32), (inter["user_idx"], inter["item_idx"])),
                          shape=(3, 3))
    return SimpleNamespace(train_interactions=inter, train=train, n_users=3, n_items=3)


def test_confidence_is_relative_and_absent_for_binary_data() -> None:
    conf = pair_confidence(_data([1, 3, 1, 5, 10]).train_interactions)
    assert conf is not None and np.isclose(conf.mean(), 1.0) and conf.dtype == np.float32
    assert np.allclose(conf, np.array([1, 3, 1, 5, 10]) / 4.0)
    assert pair_confidence(_data([4, 4, 4, 4, 4]).train_interactions) is None  # all equal
    assert pair_confidence(_data(None).train_interactions) is None  # an evaluation split
    binary = weighted_train(_data(None))
    assert (binary != _data(None).train).nnz == 0
    w = weighted_train(_data([1, 3, 1, 5, 10])).toarray()
    assert np.isclose(w[2, 0], 2.5) and np.isclose(w[0, 0], 0.25)


def test_ease_learns_from_the_weighted_matrix() -> None:
    """Same pairs, other weights: other neighbour weights (and none without weights)."""
    def fit(weights: list[float] | None) -> np.ndarray:
        ease = SparseEASERecommender(lam=0.5, k=2)
        ease.fit(_data(weights))
        return ease.weights

    assert not np.allclose(fit([1, 9, 1, 9, 1]), fit(None))
    assert np.allclose(fit([2, 2, 2, 2, 2]), fit(None))  # equal weights: binary


def test_item_knn_similarities_use_the_confidence() -> None:
    from training.models.retrieval_recommenders import ItemKNNRecommender

    def fit(weights: list[float] | None) -> np.ndarray:
        knn = ItemKNNRecommender(k=2, shrink=0.0, candidate_k=None)
        knn.fit(_data(weights))
        return knn.weights

    assert not np.allclose(fit([1, 9, 1, 9, 1]), fit(None))
    assert np.allclose(fit([3, 3, 3, 3, 3]), fit(None))  # equal weights: binary


def test_two_tower_examples_carry_their_weights_and_the_loss_uses_them() -> None:
    ex = build_training_examples(np.array([1, 0, 0]), np.array([2, 1, 0]), np.array([5, 2, 1]),
                                 3, weights=np.array([3.0, 2.0, 1.0]))
    assert ex.item_idx.tolist() == [0, 1, 2] and ex.weight is not None
    assert ex.weight.tolist() == [1.0, 2.0, 3.0]  # reordered with the examples
    task = RetrievalTask(temperature=1.0, logq_correction=False)
    q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    c = np.array([[3.0, 0.0], [0.0, -1.0]], np.float32)  # row 2 scores its positive low
    log_q, idx = np.zeros(2, np.float32), np.array([0, 1])
    plain, _ = task(q, c, log_q, idx)
    heavy_bad, _ = task(q, c, log_q, idx, np.array([0.1, 10.0], np.float32))
    assert float(heavy_bad) > float(plain)  # the badly scored row weighs more


def test_negatives_join_the_ranker_lists_as_label_zero_rows_with_source_ranks() -> None:
    negatives = pd.DataFrame({"user_id": [10, 10, 30, 99], "item_id": [200, 300, 100, 100]})
    m = negatives_matrix(negatives, np.array([10, 20, 30]), np.array([100, 200, 300]))
    assert m is not None and m.toarray().tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]
    assert negatives_matrix(None, np.array([1]), np.array([1])) is None

    class Scores:
        def score(self, users: np.ndarray) -> np.ndarray:
            return np.tile(np.array([0.1, 0.9, 0.5], np.float32), (len(users), 1))

    data = SimpleNamespace(train=sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]],
                                                        np.float32)))
    cs = CandidateSet(np.array([1]), np.array([[0.9]], np.float32), np.array([[1]], np.int32),
                      np.array([1]), np.array([0.5], np.float32), ("src",), 3)
    out = add_negatives([cs, cs, cs], {"src": Scores()}, data, np.array([0, 1, 2]), m, depth=1)
    assert out[1] is cs  # no negatives: unchanged
    assert out[0].item_idx.tolist() == [1, 2]  # item 1 already a candidate; 2 appended
    assert out[0].ranks[1, 0] == 3 and out[0].scores[1, 0] == 0  # rank 2 > depth 1: missed
    assert out[0].source_mask.tolist() == [1, 0] and out[0].fused[1] == 0
    assert out[2].item_idx.tolist() == [1, 0]  # user 2 hid item 0
