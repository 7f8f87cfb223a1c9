"""Retrieval engine internals: sources whose cost must not follow the catalogue size, and
the index kind (exact, Annoy, HNSW) each setting serves from."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.retrieval import pipeline
from services.retrieval.engine import RetrievalEngine
from services.retrieval.lists import most_popular
from services.retrieval.settings import RetrievalSettings
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from shared.contracts.errors import ConfigError, ValidationError
from shared.model.search import VectorIndex
from shared.model.search.annoy_index import AnnIndex
from shared.model.search.exact import ExactSearch
from shared.model.search.hnsw import HnswIndex
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


def _engine_with(bundle_root: Path, tmp_path: Path, **settings: Any) -> RetrievalEngine:
    return RetrievalEngine(
        RetrievalSettings(artifacts=str(bundle_root), redis_url=None, **settings),
        load_bundle(bundle_root),
        UserStateStore(None),
        FreshItemStore(None, tmp_path),
    )


def _engine(bundle_root: Path, tmp_path: Path, threads: int) -> RetrievalEngine:
    return _engine_with(
        bundle_root, tmp_path, force_ann=True, ann_backend="annoy", ann_threads=threads
    )


def _user_request(
    engine: RetrievalEngine, u: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A known user's history positions, a random query vector and the history as exclusions."""
    hist = engine.histories[u].astype(np.int64)  # held as catalogue positions
    vec = rng.standard_normal((int(engine.item_vectors.shape[1]),), dtype=np.float32)
    exclude = np.zeros(engine.n_items, dtype=bool)
    exclude[hist] = True
    return hist, vec, exclude


def test_threaded_annoy_queries_give_the_inline_lists(small_bundle: Path, tmp_path: Path) -> None:
    parallel = _engine(small_bundle, tmp_path, threads=2)
    serial = _engine(small_bundle, tmp_path, threads=0)
    assert parallel._ann_pool is not None, "Annoy indexes: queries must run in the ANN threads"
    assert serial._ann_pool is None
    assert "content" in parallel.source_names and "two_tower" in parallel.source_names
    rng = np.random.default_rng(0)
    for u in rng.choice(len(parallel.user_ids), size=10, replace=False):
        hist, vec, exclude = _user_request(parallel, u, rng)
        a = asyncio.run(pipeline.source_lists(parallel, vec, hist, exclude, None))
        b = asyncio.run(pipeline.source_lists(serial, vec, hist, exclude, None))
        assert a.keys() == b.keys() and "content" in a
        for name in a:
            np.testing.assert_array_equal(a[name][0], b[name][0])
            np.testing.assert_array_equal(a[name][1], b[name][1])


def test_table_sources_run_while_the_ann_queries_are_in_flight(
    small_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(small_bundle, tmp_path, threads=2)
    tables_done = threading.Event()
    plain_scores = pipeline.score_from_history

    def scores_then_signal(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = plain_scores(*args, **kwargs)
        tables_done.set()
        return out

    class WaitsForTables:
        """An index whose answer needs the table sources finished first (else it fails)."""

        offload = True  # a slow query: it must run in the ANN threads

        def __init__(self, inner: VectorIndex) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def query(self, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
            if not tables_done.wait(timeout=10.0):
                raise AssertionError("the table sources waited for the ANN query")
            return self.inner.query(q, n)

    monkeypatch.setattr(pipeline, "score_from_history", scores_then_signal)
    engine.item_index = WaitsForTables(engine.item_index)  # type: ignore[assignment]
    engine.content_index = WaitsForTables(engine.content_index)  # type: ignore[assignment]
    hist, vec, exclude = _user_request(engine, 0, np.random.default_rng(4))
    lists = asyncio.run(pipeline.source_lists(engine, vec, hist, exclude, None))
    assert tables_done.is_set() and {"two_tower", "content"} <= lists.keys()
    assert set(engine.tables) <= lists.keys()


def test_a_failing_table_source_leaves_no_query_unawaited(
    small_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(small_bundle, tmp_path, threads=2)

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ValidationError("table broken")

    monkeypatch.setattr(pipeline, "score_from_history", broken)
    hist, vec, exclude = _user_request(engine, 0, np.random.default_rng(5))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValidationError, match="table broken"):
            asyncio.run(pipeline.source_lists(engine, vec, hist, exclude, None))
        gc.collect()
    assert not [w for w in seen if "never awaited" in str(w.message)], seen


def test_backend_setting_picks_the_index_kind(small_bundle: Path, tmp_path: Path) -> None:
    exact = _engine_with(small_bundle, tmp_path)  # small catalogue: exact search
    assert isinstance(exact.item_index, ExactSearch) and exact._ann_pool is None
    auto = _engine_with(small_bundle, tmp_path, force_ann=True)  # the bundle has graphs
    assert isinstance(auto.item_index, HnswIndex) and isinstance(auto.content_index, HnswIndex)
    assert auto._ann_pool is not None
    recorded = auto.bundle.manifest["components"]["hnsw"]["item_tower"]["ef"]
    assert auto.item_index.ef == recorded
    tuned = _engine_with(small_bundle, tmp_path, force_ann=True, hnsw_ef=77)
    assert isinstance(tuned.item_index, HnswIndex) and tuned.item_index.ef == 77
    annoy = _engine_with(small_bundle, tmp_path, force_ann=True, ann_backend="annoy")
    assert isinstance(annoy.item_index, AnnIndex) and isinstance(annoy.content_index, AnnIndex)


def test_hnsw_backend_without_graphs_names_the_fix(small_bundle: Path, tmp_path: Path) -> None:
    bundle = load_bundle(small_bundle)
    del bundle.manifest["files"][L.ITEM_HNSW]  # as in a bundle trained without --hnsw
    settings = RetrievalSettings(
        artifacts=str(small_bundle), redis_url=None, force_ann=True, ann_backend="hnsw"
    )
    with pytest.raises(ConfigError, match=r"HYBRIDREC_ANN_BACKEND=hnsw.*--hnsw"):
        RetrievalEngine(settings, bundle, UserStateStore(None), FreshItemStore(None, tmp_path))
    auto = RetrievalEngine(
        RetrievalSettings(artifacts=str(small_bundle), redis_url=None, force_ann=True),
        bundle,
        UserStateStore(None),
        FreshItemStore(None, tmp_path),
    )
    assert isinstance(auto.item_index, AnnIndex) and isinstance(auto.content_index, HnswIndex)


def test_hnsw_source_lists_agree_with_exact_search(small_bundle: Path, tmp_path: Path) -> None:
    graph = _engine_with(small_bundle, tmp_path, force_ann=True, ann_backend="hnsw")
    exact = _engine_with(small_bundle, tmp_path)
    rng = np.random.default_rng(1)
    overlap: dict[str, list[float]] = {"two_tower": [], "content": []}
    for u in rng.choice(len(graph.user_ids), size=10, replace=False):
        hist, vec, exclude = _user_request(graph, u, rng)
        a = asyncio.run(pipeline.source_lists(graph, vec, hist, exclude, None))
        b = asyncio.run(pipeline.source_lists(exact, vec, hist, exclude, None))
        for name in overlap:
            got, want = set(a[name][0].tolist()), set(b[name][0].tolist())
            overlap[name].append(len(got & want) / len(want))
        for name in set(a) - set(overlap):  # table and popularity sources do not search
            np.testing.assert_array_equal(a[name][0], b[name][0])
    assert min(np.mean(v) for v in overlap.values()) >= 0.9, overlap


def _usable_top(
    ids: np.ndarray, exclude: np.ndarray, allowed: np.ndarray | None, depth: int
) -> list[int]:
    ok = ~exclude[ids]
    if allowed is not None:
        ok &= allowed[ids]
    return ids[ok][:depth].tolist()


@pytest.mark.parametrize("filtered", [False, True])
def test_smaller_first_query_keeps_the_full_querys_candidates(
    small_bundle: Path, tmp_path: Path, filtered: bool
) -> None:
    engine = _engine_with(small_bundle, tmp_path)  # exact search: results are prefixes
    engine.depth = 20  # the slice's catalogue is small: leave room for both paths
    rng = np.random.default_rng(3)
    asked: list[int] = []
    plain_start = engine.start_query

    def counting(index, q, n):  # type: ignore[no-untyped-def]
        asked.append(n)
        return plain_start(index, q, n)

    engine.start_query = counting  # type: ignore[method-assign]

    async def search(vec, first, full, exclude, allowed):  # type: ignore[no-untyped-def]
        pending = engine.start_query(engine.item_index, vec, first)
        return await pipeline.search(
            engine, engine.item_index, pending, vec, first, full, exclude, allowed
        )

    allowed = rng.random(engine.n_items) < 0.5 if filtered else None
    requeried = 0
    for u in rng.choice(len(engine.user_ids), size=30, replace=False):
        hist, _, exclude = _user_request(engine, u, rng)
        # The query nearest the history: most of its neighbours are excluded items.
        vec = engine.item_vectors[hist].mean(axis=0).astype(np.float32)
        widen = 4 if filtered else 1
        full = min((engine.depth + min(len(hist), 5 * engine.depth)) * widen, engine.n_items)
        first = min((engine.depth + min(len(hist), engine.depth // 2)) * widen, full)
        asked.clear()
        got = asyncio.run(search(vec, first, full, exclude, allowed))
        want = engine.item_index.query(vec, full)
        assert _usable_top(got[0], exclude, allowed, engine.depth) == _usable_top(
            want[0], exclude, allowed, engine.depth
        )
        assert asked[0] == first and len(asked) in (1, 2)
        if len(asked) == 2:
            requeried += 1
            assert asked[1] == full
            usable = _usable_top(engine.item_index.query(vec, first)[0], exclude, allowed, 10**9)
            assert len(usable) < engine.depth  # only when the first one fell short
    assert 0 < requeried < 30, requeried  # both paths ran
