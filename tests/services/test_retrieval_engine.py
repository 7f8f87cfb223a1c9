"""Retrieval engine internals: sources whose cost must not follow the catalogue size."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from services.retrieval.engine import RetrievalEngine, most_popular
from services.retrieval.settings import RetrievalSettings
from shared.artifacts import load_bundle
from shared.stores.fresh_items import FreshItemStore
from shared.stores.user_state import UserStateStore


def _full_scan(order, k, exclude, allowed):  # type: ignore[no-untyped-def]
    ok = ~exclude[order]
    if allowed is not None:
        ok &= allowed[order]
    return order[ok][:k]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("filtered", [False, True])
def test_most_popular_equals_a_full_scan(seed: int, filtered: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 2_000
    order = rng.permutation(n)
    exclude = np.zeros(n, dtype=bool)
    # exclusions concentrated at the head of the ranking, the hard case for a window
    exclude[order[: int(rng.integers(0, 300))]] = True
    exclude[rng.choice(n, size=50, replace=False)] = True
    allowed = rng.random(n) < 0.05 if filtered else None
    for k in (1, 10, 100, 500):
        got = most_popular(order, k, exclude, allowed)
        np.testing.assert_array_equal(got, _full_scan(order, k, exclude, allowed))
        counted = most_popular(order, k, exclude, allowed, int(exclude.sum()))
        np.testing.assert_array_equal(counted, got)


def test_most_popular_when_too_few_items_qualify() -> None:
    order = np.arange(10)[::-1].copy()
    exclude = np.zeros(10, dtype=bool)
    exclude[[9, 8, 7]] = True
    allowed = np.zeros(10, dtype=bool)
    allowed[[1, 8]] = True
    assert most_popular(order, 5, exclude, allowed).tolist() == [1]
    assert most_popular(order, 5, np.ones(10, dtype=bool), None).tolist() == []
    assert most_popular(order[:0], 5, exclude, None).tolist() == []


def _engine(bundle_root: Path, tmp_path: Path, threads: int) -> RetrievalEngine:
    settings = RetrievalSettings(
        artifacts=str(bundle_root), force_ann=True, ann_threads=threads, redis_url=None
    )
    return RetrievalEngine(
        settings,
        load_bundle(bundle_root),
        UserStateStore(None),
        FreshItemStore(None, tmp_path),
    )


def test_threaded_annoy_queries_give_the_inline_lists(small_bundle: Path, tmp_path: Path) -> None:
    parallel = _engine(small_bundle, tmp_path, threads=2)
    serial = _engine(small_bundle, tmp_path, threads=0)
    assert parallel._ann_pool is not None, "Annoy indexes: queries must run in the ANN threads"
    assert serial._ann_pool is None
    assert "content" in parallel.source_names and "two_tower" in parallel.source_names
    rng = np.random.default_rng(0)
    for u in rng.choice(len(parallel.user_ids), size=10, replace=False):
        pos = parallel.catalogue.positions(parallel.histories[u].tolist())
        hist = pos[pos >= 0]
        vec = rng.standard_normal((int(parallel.item_vectors.shape[1]),), dtype=np.float32)
        exclude = np.zeros(parallel.n_items, dtype=bool)
        exclude[hist] = True
        a = asyncio.run(parallel.source_lists(vec, hist, exclude, None))
        b = asyncio.run(serial.source_lists(vec, hist, exclude, None))
        assert a.keys() == b.keys() and "content" in a
        for name in a:
            np.testing.assert_array_equal(a[name][0], b[name][0])
            np.testing.assert_array_equal(a[name][1], b[name][1])
