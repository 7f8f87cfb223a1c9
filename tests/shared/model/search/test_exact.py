"""Exact search: the same answers as the brute-force reference, and the size rule."""

from __future__ import annotations

import numpy as np
import pytest

from shared.contracts.errors import ConfigError
from shared.model.search.annoy_index import AnnIndex, exact_topk, recall_at_k
from shared.model.search.exact import EXACT_MAX_ELEMENTS, ExactSearch, use_exact


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, d)).astype(np.float32)
    return (centres[rng.integers(20, size=n)] + 0.3 * rng.standard_normal((n, d))).astype(
        np.float32
    )


def test_matches_the_reference_and_beats_annoy_recall() -> None:
    vecs = _clustered(3000, 32)
    queries = _clustered(40, 32, seed=1)
    search = ExactSearch(vecs)
    ref_ids, ref_scores = exact_topk(vecs, queries, 100)
    got = [search.query(q, 100) for q in queries]
    ids = np.stack([g[0] for g in got])
    scores = np.stack([g[1] for g in got])
    assert recall_at_k(ids, ref_ids) == 1.0
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
    ann = AnnIndex.build(vecs, n_trees=2, search_k=200)  # a weak index, to show the gap
    ann_ids = np.stack([ann.query(q, 100)[0] for q in queries])
    assert recall_at_k(ann_ids, ref_ids) < 1.0


def test_edge_cases() -> None:
    vecs = _clustered(10, 8)
    search = ExactSearch(vecs)
    ids, scores = search.query(vecs[3], 50)  # k above n: every item, itself first
    assert sorted(ids.tolist()) == list(range(10)) and ids[0] == 3
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert search.query(vecs[0], 0)[0].shape == (0,)
    zero_ids, zero_scores = search.query(np.zeros(8, np.float32), 3)  # no direction: ties
    assert zero_ids.tolist() == [0, 1, 2] and np.all(zero_scores == 0)
    with pytest.raises(ConfigError, match="width 7"):
        search.query(np.zeros(7, np.float32), 3)
    with pytest.raises(ConfigError, match="2-D"):
        ExactSearch(np.zeros(5, np.float32))
    assert search.n_items == 10 and search.params["kind"] == "exact"


def test_size_rule() -> None:
    assert use_exact(9742, 64) and use_exact(9742, 384)
    assert use_exact(EXACT_MAX_ELEMENTS // 64, 64)
    assert not use_exact(EXACT_MAX_ELEMENTS // 64 + 1, 64)
    assert not use_exact(1_000_000, 64)
