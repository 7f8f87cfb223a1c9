"""The synthetic catalogue generator and the catalogue-size rule for Annoy parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import synthetic_items as S
from shared.model.search.annoy_index import (
    DEFAULT_N_TREES,
    DEFAULT_SEARCH_K,
    LARGE_CATALOGUE,
    LARGE_N_TREES,
    LARGE_SEARCH_K,
    LARGE_WIDE_N_TREES,
    LARGE_WIDE_SEARCH_K,
    params_for_catalogue,
)
from training.pipeline import TrainConfig


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_cluster_sizes_follow_a_power_law() -> None:
    parents = S.assign_parents(200_000, 1000, np.random.default_rng(0))
    assert parents.min() >= 0 and parents.max() < 1000
    sizes = np.sort(np.bincount(parents, minlength=1000))[::-1]
    assert sizes[0] > 20 * np.median(sizes)  # a few huge clusters, a long tail
    assert (sizes > 0).sum() > 900


def test_content_vectors_are_unit_and_close_to_their_parent() -> None:
    rng = np.random.default_rng(1)
    base = _unit(rng, 50, 384)
    parents = S.assign_parents(3000, 50, rng)
    out = np.zeros((50 + 3000, 384), np.float32)
    out[:50] = base
    S.write_content_vectors(base, parents, out, 50, rng)
    syn = out[50:]
    assert np.allclose(np.linalg.norm(syn, axis=1), 1.0, atol=1e-5)
    cos_parent = np.sum(syn * base[parents], axis=1)
    assert 0.75 < float(np.median(cos_parent)) < 0.93
    cos_other = np.sum(syn * base[(parents + 1) % 50], axis=1)
    assert float(np.median(cos_other)) < 0.3


def test_items_table_has_the_bundle_columns() -> None:
    rng = np.random.default_rng(2)
    base = pd.DataFrame({
        "item_id": [1, 2, 5], "title": ["A (1990)", "B (2001)", "C (1975)"],
        "year": pd.array([1990, 2001, None], dtype="Int64"),
        "genres": [["Drama"], ["Comedy", "Drama"], ["Horror"]],
        "tags": [[], [], []], "overview": [None, None, None], "popularity": [3, 9, 1],
    })
    parents = np.array([0, 1, 2, 2, 1])
    syn = S.synthetic_items(base, parents, 6, rng, max_popularity=9)
    assert list(syn.columns) == list(base.columns)
    assert syn["item_id"].tolist() == ["6", "7", "8", "9", "10"]  # ids are strings
    assert syn["year"].iloc[2:4].isna().all()  # the parent's year is unknown
    assert syn["title"].iloc[0].endswith(")")
    assert all(set(g) & set(base["genres"].iat[p]) or len(g) > 0
               for g, p in zip(syn["genres"], parents, strict=True))
    assert int(syn["popularity"].max()) <= 9


def test_extended_neighbour_tables_keep_real_rows_and_never_point_to_self() -> None:
    rng = np.random.default_rng(3)
    n_real, k = 20, 5
    nb = rng.integers(0, n_real, size=(n_real, k)).astype(np.int32)
    w = np.sort(rng.random((n_real, k)).astype(np.float32), axis=1)[:, ::-1].copy()
    parents = S.assign_parents(500, n_real, rng)
    out_nb = np.zeros((n_real + 500, k), np.int32)
    out_w = np.zeros((n_real + 500, k), np.float32)
    S.extend_neighbors(nb, w, parents, n_real, out_nb, out_w, rng)
    assert np.array_equal(out_nb[:n_real], nb) and np.array_equal(out_w[:n_real], w)
    syn = out_nb[n_real:]
    assert np.array_equal(syn[:, 0], parents)  # the parent comes first
    assert not np.any(syn == np.arange(n_real, n_real + 500)[:, None])
    members = syn[:, 1:]
    ok = members >= 0
    assert np.all(parents[(members[ok] - n_real)] == np.repeat(parents, k - 1)[ok.ravel()])
    assert np.all(out_w[n_real:][syn < 0] == 0)


def test_annoy_parameters_follow_the_catalogue_size() -> None:
    small = (DEFAULT_N_TREES, DEFAULT_SEARCH_K)
    assert params_for_catalogue(10_000, 64) == small
    assert params_for_catalogue(LARGE_CATALOGUE, 384) == small
    assert params_for_catalogue(1_000_000, 64) == (LARGE_N_TREES, LARGE_SEARCH_K)
    assert params_for_catalogue(1_000_000, 384) == (LARGE_WIDE_N_TREES, LARGE_WIDE_SEARCH_K)
    cfg = TrainConfig()
    assert cfg.ann_params(1_000_000, 64) == (LARGE_N_TREES, LARGE_SEARCH_K)
    assert TrainConfig(ann_n_trees=7).ann_params(1_000_000, 64) == (7, LARGE_SEARCH_K)
    assert TrainConfig(ann_search_k=99).ann_params(500, 384) == (DEFAULT_N_TREES, 99)
