"""HNSW graph index: recall against exact search, scores, save/load, threads, bad input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from shared.contracts.errors import BundleError, ConfigError
from shared.model.search.annoy_index import exact_topk, recall_at_k
from shared.model.search.hnsw import DEFAULT_EF, WIDE_EF, HnswIndex, default_ef
from tests.shared.model.search.test_annoy_index import (
    DIM,
    assert_cosine_topk,
    assert_reloads_same,
    clustered,
)


def test_hnsw_matches_exact_search_and_survives_reload(tmp_path: Path) -> None:
    vectors, queries = clustered(seed=2)
    index = HnswIndex.build(vectors, m=12, ef_construction=80, ef=64, seed=5)
    assert index.n_items == len(vectors)
    assert index.build_seconds is not None and index.build_seconds > 0
    assert index.params == {
        "metric": "cosine",
        "kind": "hnsw",
        "dim": DIM,
        "M": 12,
        "ef_construction": 80,
        "ef": 64,
        "n_items": len(vectors),
        "seed": 5,
    }
    ids, scores = index.query_batch(queries, 10)
    exact_ids, exact_scores = exact_topk(vectors, queries, 10)
    assert ids.shape == (60, 10) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert recall_at_k(ids, exact_ids) >= 0.95

    assert_cosine_topk(vectors, queries, ids, scores, exact_scores)

    loaded = assert_reloads_same(
        index, tmp_path / "sub" / "items.hnsw", lambda p: HnswIndex.load(p, DIM, ef=64),
        queries, ids, scores,
    )
    assert loaded.n_items == len(vectors)
    assert loaded.params["M"] == 12 and loaded.params["ef"] == 64
    one_ids, one_scores = loaded.query(queries[3], 5)
    np.testing.assert_array_equal(one_ids, ids[3, :5])
    np.testing.assert_allclose(one_scores, scores[3, :5], atol=1e-6)


def test_a_wider_beam_finds_at_least_as_much() -> None:
    vectors, queries = clustered(seed=3, n=4000, centers=8)
    # One build thread: the graph is then fixed by the seed (threads vary the insertion
    # order, and this deliberately weak graph's recall with it, 0.89-0.94 at ef=400).
    index = HnswIndex.build(vectors, m=4, ef_construction=20, ef=10, seed=1, n_threads=1)
    truth, _ = exact_topk(vectors, queries, 50)
    narrow = recall_at_k(index.query_batch(queries, 50)[0], truth)
    index.set_ef(400)
    assert index.params["ef"] == 400
    wide = recall_at_k(index.query_batch(queries, 50)[0], truth)
    assert narrow < 0.85 and wide >= 0.95, (narrow, wide)  # 0.79 -> 0.99 here


def test_more_neighbours_than_items_returns_every_item() -> None:
    vectors, queries = clustered(seed=4, n=40, centers=4)
    index = HnswIndex.build(vectors, seed=2)
    ids, _ = index.query(queries[0], 100)
    assert sorted(ids.tolist()) == list(range(40))
    batch_ids, batch_scores = index.query_batch(queries[:2], 50)
    assert batch_ids.shape == (2, 50)
    assert np.all(batch_ids[:, 40:] == -1) and np.all(np.isneginf(batch_scores[:, 40:]))
    assert np.all(batch_ids[:, :40] >= 0)
    assert index.query(queries[0], 0)[0].size == 0


def test_queries_from_several_threads_equal_serial_queries() -> None:
    vectors, queries = clustered(seed=5)
    index = HnswIndex.build(vectors, seed=3)
    serial = [index.query(q, 20) for q in queries]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda q: index.query(q, 20), queries))
    for (a_ids, a_sc), (b_ids, b_sc) in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a_sc, b_sc)


def test_default_beam_depends_on_width() -> None:
    assert default_ef(64) == DEFAULT_EF and default_ef(384) == WIDE_EF
    vectors, _ = clustered(seed=6, n=200)
    assert HnswIndex.build(vectors).ef == default_ef(DIM)


def test_bad_input_and_bad_files_fail_with_clear_errors(tmp_path: Path) -> None:
    vectors, _ = clustered(seed=7, n=300)
    with pytest.raises(ConfigError, match="NaN"):
        HnswIndex.build(np.where(np.arange(DIM) == 0, np.nan, vectors))
    with pytest.raises(ConfigError, match="2-D"):
        HnswIndex.build(vectors[0])
    with pytest.raises(ConfigError, match="m >= 2"):
        HnswIndex.build(vectors, m=1)
    index = HnswIndex.build(vectors)
    with pytest.raises(ConfigError, match="width 5"):
        index.query(np.ones(5, np.float32), 3)
    with pytest.raises(BundleError, match="does not exist"):
        HnswIndex.load(tmp_path / "missing.hnsw", DIM)
    garbage = tmp_path / "garbage.hnsw"
    garbage.write_bytes(b"not an index" * 10)
    with pytest.raises(BundleError, match="cannot load HNSW index"):
        HnswIndex.load(garbage, DIM)
    garbage.write_bytes(b"short")
    with pytest.raises(BundleError, match="unreadable width"):
        HnswIndex.load(garbage, DIM)
    saved = index.save(tmp_path / "ok.hnsw")
    with pytest.raises(BundleError, match=f"width {DIM}"):
        HnswIndex.load(saved, DIM // 2)
    # A truncated file has the right header but not the data it announces.
    truncated = tmp_path / "truncated.hnsw"
    truncated.write_bytes(saved.read_bytes()[:2000])
    with pytest.raises(BundleError, match="cannot load HNSW index"):
        HnswIndex.load(truncated, DIM)
