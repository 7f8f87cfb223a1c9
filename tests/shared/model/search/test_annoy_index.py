"""Annoy index wrapper, exact search and recall."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.contracts.errors import BundleError, ConfigError
from shared.model.search.annoy_index import AnnIndex, exact_topk, recall_at_k

DIM = 32


def clustered(seed: int = 0, n: int = 3000, centers: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Vectors around random centres, and queries near the same centres."""
    rng = np.random.default_rng(seed)
    mids = rng.normal(size=(centers, DIM))
    labels = rng.integers(0, centers, size=n)
    vectors = mids[labels] + 0.35 * rng.normal(size=(n, DIM))
    queries = mids[rng.integers(0, centers, size=60)] + 0.35 * rng.normal(size=(60, DIM))
    return vectors.astype(np.float32), queries.astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def assert_cosine_topk(
    vectors: np.ndarray, queries: np.ndarray, ids: np.ndarray, scores: np.ndarray,
    exact_scores: np.ndarray,
) -> None:
    """Scores are the cosine similarities of the returned items, best first, and no
    score beats the exact best neighbour's."""
    cos = np.einsum("qkd,qd->qk", unit(vectors)[ids], unit(queries))
    np.testing.assert_allclose(scores, cos, atol=1e-4)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    assert np.all(scores[:, 0] <= exact_scores[:, 0] + 1e-5)


def assert_reloads_same(
    index: Any, path: Path, load: Callable[[Path], Any], queries: np.ndarray,
    ids: np.ndarray, scores: np.ndarray,
) -> Any:
    """Saved atomically (no temporary file left) and loaded back, the index gives the same
    answers; returns the loaded index."""
    saved = index.save(path)
    assert saved.is_file() and not [p for p in saved.parent.iterdir() if p.name.startswith(".")]
    loaded = load(saved)
    assert loaded.n_items == index.n_items
    again_ids, again_scores = loaded.query_batch(queries, ids.shape[1])
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_allclose(again_scores, scores, atol=1e-6)
    return loaded


def test_ann_matches_exact_search_and_survives_reload(tmp_path: Path) -> None:
    vectors, queries = clustered()
    index = AnnIndex.build(vectors, n_trees=20, seed=7, search_k=2000)
    assert index.n_items == len(vectors)
    assert index.params == {
        "metric": "angular",
        "dim": DIM,
        "n_trees": 20,
        "search_k": 2000,
        "n_items": len(vectors),
        "seed": 7,
    }
    ann_ids, ann_scores = index.query_batch(queries, 10)
    exact_ids, exact_scores = exact_topk(vectors, queries, 10)
    assert ann_ids.shape == exact_ids.shape == (60, 10)
    assert ann_ids.dtype == np.int64 and ann_scores.dtype == np.float32
    assert recall_at_k(ann_ids, exact_ids) >= 0.9

    assert_cosine_topk(vectors, queries, ann_ids, ann_scores, exact_scores)

    loaded = assert_reloads_same(
        index, tmp_path / "sub" / "items.ann", lambda p: AnnIndex.load(p, DIM, search_k=2000),
        queries, ann_ids, ann_scores,
    )
    assert loaded.n_items == len(vectors) and loaded.params["n_trees"] == 20

    one_ids, one_scores = loaded.query(queries[3], 5)
    np.testing.assert_array_equal(one_ids, ann_ids[3, :5])
    np.testing.assert_allclose(one_scores, ann_scores[3, :5], atol=1e-6)


def test_build_is_deterministic_and_on_disk_build_matches(tmp_path: Path) -> None:
    vectors, queries = clustered(seed=1, n=1500)
    a = AnnIndex.build(vectors, n_trees=8, seed=3)
    b = AnnIndex.build(vectors, n_trees=8, seed=3, on_disk_path=tmp_path / "disk.ann")
    assert (tmp_path / "disk.ann").stat().st_size > 0
    ids_a, _ = a.query_batch(queries, 10)
    ids_b, _ = b.query_batch(queries, 10)
    np.testing.assert_array_equal(ids_a, ids_b)
    assert b.save(tmp_path / "disk.ann") == tmp_path / "disk.ann"
    copy = b.save(tmp_path / "copy.ann")
    ids_c, _ = AnnIndex.load(copy, DIM).query_batch(queries, 10)
    np.testing.assert_array_equal(ids_c, ids_a)


def test_small_index_pads_batch_results() -> None:
    vectors = unit(np.eye(4, DIM, dtype=np.float32) + 0.01)
    index = AnnIndex.build(vectors, n_trees=2, seed=0)
    ids, scores = index.query_batch(vectors[:2], 6, search_k=-1)
    assert ids.shape == (2, 6)
    assert ids[0, 0] == 0 and ids[1, 0] == 1
    assert np.all(ids[:, 4:] == -1) and np.all(np.isneginf(scores[:, 4:]))
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match="width"):
        index.query(np.ones(DIM + 1, dtype=np.float32), 3)


def test_exact_topk_matches_full_sort_and_breaks_ties_by_id() -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(200, 8)).astype(np.float32)
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    ids, scores = exact_topk(vectors, queries, 15)
    sims = unit(queries) @ unit(vectors).T
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :15]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, expected, axis=1), atol=1e-5)

    dup = np.array([[1, 0], [0, 1], [1, 0], [2, 0]], dtype=np.float32)
    tie_ids, _ = exact_topk(dup, np.array([[1, 0]], dtype=np.float32), 3)
    assert tie_ids.tolist() == [[0, 2, 3]]
    all_ids, _ = exact_topk(dup, np.array([[0, 1]], dtype=np.float32), 10)
    assert all_ids.shape == (1, 4) and all_ids[0, 0] == 1


def test_recall_at_k() -> None:
    assert recall_at_k(np.array([[1, 2, 3]]), np.array([[1, 2, 4]])) == pytest.approx(2 / 3)
    assert recall_at_k(np.array([[5, -1], [7, 8]]), np.array([[5, 6], [8, 7]])) == 0.75
    assert recall_at_k(np.array([9, 8]), np.array([1, 2])) == 0.0


def test_load_missing_file_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        AnnIndex.load(tmp_path / "none.ann", DIM)
    (tmp_path / "empty.ann").write_bytes(b"")
    with pytest.raises(BundleError, match="cannot load Annoy index"):
        AnnIndex.load(tmp_path / "empty.ann", DIM)
