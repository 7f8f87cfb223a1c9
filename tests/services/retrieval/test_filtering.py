"""Filters inside retrieval: the allowed mask against a per-item check, the search under a
mask (exact scan or widened ANN) against brute force, the top-up to k, and live item
changes (issue 19.5)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from services.retrieval.filtering import (
    LiveItems,
    allowed_mask,
    filtered_search,
    subset_search,
    top_up,
    widen_factor,
    widened,
)
from shared.contracts.errors import ValidationError
from shared.contracts.filters import ItemFilter
from shared.model.candidates import merge_candidates
from shared.model.catalogue import Catalogue
from shared.model.search.exact import ExactSearch

CATS = ("fantasy", "crime", "poetry", "travel", "art")


def _catalogue(n: int, seed: int = 0) -> Catalogue:
    rng = np.random.default_rng(seed)
    cats = [sorted({CATS[i] for i in rng.integers(0, len(CATS), rng.integers(0, 3))})
            for _ in range(n)]
    price = rng.uniform(1, 50, n).astype(np.float32)
    price[rng.random(n) < 0.1] = np.nan
    return Catalogue(
        item_ids=np.asarray([f"i{j}" for j in range(n)]), titles=[f"t{j}" for j in range(n)],
        years=[None] * n, genres=cats, tags=[[] for _ in range(n)], overviews=[None] * n,
        popularity=rng.integers(0, 100, n).astype(np.int64),
        attribute_types={"categories": "categorical", "price": "numeric"},
        categorical={"categories": cats}, numeric={"price": price},
        available=rng.random(n) < 0.9, list_attributes={"categories"})


def _engine(cat: Catalogue, patches: dict[str, dict[str, Any]] | None = None,
            index: Any = None) -> SimpleNamespace:
    async def ann_query(idx: Any, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        return idx.query(q, n)  # type: ignore[no-any-return]

    return SimpleNamespace(
        catalogue=cat, live=LiveItems.build(cat, patches or {}), n_items=len(cat),
        popular_order=np.argsort(-cat.popularity, kind="stable"), ann_query=ann_query,
        index=index)


@pytest.mark.parametrize("seed", range(3))
def test_allowed_mask_equals_checking_each_item(seed: int) -> None:
    cat = _catalogue(500, seed)
    patches = {"i3": {"available": False}, "i4": {"attributes": {"categories": ["art"]}},
               "i5": {"available": True, "attributes": {"price": 5.0}}}
    engine = _engine(cat, patches)
    for spec in ({"include": {"categories": ["Fantasy", "art"]}},
                 {"exclude": {"categories": ["crime"]}, "range": {"price": {"lte": 20}}},
                 {"range": {"price": {"gt": 10, "lt": 30}}}, {}):
        flt = ItemFilter.model_validate(spec)
        mask = allowed_mask(engine, flt, [])  # type: ignore[arg-type]
        assert mask is not None
        expect = [engine.live.available[p] and flt.matches(engine.live.attributes(cat, p))
                  for p in range(len(cat))]
        np.testing.assert_array_equal(mask, expect)
    assert not allowed_mask(engine, None, [])[3]  # type: ignore[arg-type,index]


def test_no_filter_and_everything_available_is_no_mask() -> None:
    cat = _catalogue(50)
    cat.available[:] = True
    assert allowed_mask(_engine(cat), None, []) is None  # type: ignore[arg-type]
    assert allowed_mask(_engine(cat), ItemFilter(), []) is None  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="colour"):
        allowed_mask(_engine(cat), ItemFilter(include={"colour": ["red"]}), [])  # type: ignore[arg-type]


class _AnnLike(ExactSearch):
    """Exact answers behind an ANN index's kind, so the widened-query path runs and its
    answer can be compared with brute force exactly."""

    kind = "hnsw"  # type: ignore[assignment]

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__(vectors)
        self.asked: list[int] = []

    def query(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.asked.append(k)
        return super().query(vector, k)


@pytest.mark.parametrize(
    ("share", "path"), [(0.01, "exact"), (0.2, "exact"), (0.3, "ann"), (0.5, "ann")]
)
def test_filtered_search_equals_brute_force_under_the_mask(share: float, path: str) -> None:
    rng = np.random.default_rng(1)
    n, d = 250_000, 64  # allowed x d above 4M elements: the ANN path, else the exact scan
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    index = _AnnLike(vectors)
    engine = _engine(_catalogue(n), index=index)
    ok = rng.random(n) < share
    q = rng.normal(size=d).astype(np.float32)
    ids, scores = asyncio.run(filtered_search(engine, index, vectors, q, 50, ok))  # type: ignore[arg-type]
    exact_ids, exact_scores = subset_search(vectors, np.flatnonzero(ok), q, 50)
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-5)
    if path == "exact":
        assert index.asked == []  # a selective filter never asks the index
    else:
        assert index.asked == [widened(50, widen_factor(n, int(ok.sum())), n)]


def test_filtered_search_falls_back_to_the_scan_when_ann_finds_too_few() -> None:
    rng = np.random.default_rng(3)
    n, d = 250_000, 32
    vectors = rng.normal(size=(n, d)).astype(np.float32)
    q = rng.normal(size=d).astype(np.float32)
    index = _AnnLike(vectors)
    ok = np.ones(n, bool)
    top, _ = index.query(q, 20_000)
    ok[top] = False  # the allowed items are far from the query: a widened ANN misses them
    index.asked.clear()
    ids, _ = asyncio.run(filtered_search(_engine(_catalogue(10), index=index), index,  # type: ignore[arg-type]
                                         vectors, q, 50, ok))
    exact_ids, _ = subset_search(vectors, np.flatnonzero(ok), q, 50)
    np.testing.assert_array_equal(ids, exact_ids)
    assert len(index.asked) == 1


def test_subset_search_is_exact_cosine() -> None:
    rng = np.random.default_rng(2)
    v = rng.normal(size=(300, 8)).astype(np.float32)
    rows = np.sort(rng.choice(300, 40, replace=False))
    q = rng.normal(size=8).astype(np.float32)
    ids, scores = subset_search(v, rows, q, 5)
    cos = (v[rows] @ q) / np.linalg.norm(v[rows], axis=1) / np.linalg.norm(q)
    np.testing.assert_array_equal(ids, rows[np.argsort(-cos)[:5]])
    np.testing.assert_allclose(scores, np.sort(cos)[::-1][:5], rtol=1e-5)
    assert widen_factor(1000, 10) == 20 and widen_factor(1000, 500) == 3
    assert widen_factor(1000, 980) == 1.5 * 1000 / 980 and widened(10, 1.5, 100) == 25


def test_top_up_fills_k_with_popular_allowed_items() -> None:
    cat = _catalogue(200)
    engine = _engine(cat)
    allowed = np.zeros(200, bool)
    allowed[::10] = True  # 20 items
    exclude = np.zeros(200, bool)
    exclude[0] = True
    cs = merge_candidates({"two_tower": (np.array([10, 20]), np.array([1.0, 0.5]))},
                          ("two_tower", "popularity"), 200)
    out = top_up(engine, cs, exclude, allowed, 15)  # type: ignore[arg-type]
    assert len(out.item_idx) == 15 and len(set(out.item_idx.tolist())) == 15
    assert allowed[out.item_idx].all() and not exclude[out.item_idx].any()
    assert out.item_idx[:2].tolist() == [10, 20]
    assert len(top_up(engine, cs, exclude, allowed, 100).item_idx) == 19  # all there are
