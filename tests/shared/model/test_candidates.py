"""Merging candidate lists: dedup, per-source scores/ranks, exclusions, fill and truncation."""

from __future__ import annotations

import numpy as np
import pytest

from shared.contracts.errors import ValidationError
from shared.model.candidates import finite_list, merge_candidates, top_n

NAMES = ("two_tower", "item_knn", "content", "popularity")


def _lists() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        "two_tower": (np.array([5, 3, 9]), np.array([0.9, 0.8, 0.1])),
        "item_knn": (np.array([3, 7, 5, 3]), np.array([2.0, 1.5, 1.0, 0.5])),
        "content": (np.array([8]), np.array([0.7])),
        "popularity": (np.array([1, 2, 3, 4]), np.array([40.0, 30.0, 20.0, 10.0])),
    }


def test_merge_dedups_and_keeps_per_source_scores_and_ranks() -> None:
    cs = merge_candidates(_lists(), NAMES, 12, fill_sources=(), missing_rank=11)
    assert len(np.unique(cs.item_idx)) == len(cs.item_idx)
    assert set(cs.item_idx.tolist()) == {1, 2, 3, 4, 5, 7, 8, 9}
    row = {int(i): k for k, i in enumerate(cs.item_idx)}
    r3 = row[3]
    # Item 3: rank 2 in two_tower, rank 1 in item_knn (its duplicate at rank 4 is ignored).
    np.testing.assert_allclose(cs.scores[r3], [0.8, 2.0, 0.0, 20.0])
    np.testing.assert_array_equal(cs.ranks[r3], [2, 1, 11, 3])
    assert cs.labels()[r3] == "two_tower+item_knn+popularity"
    r8 = row[8]
    np.testing.assert_allclose(cs.scores[r8], [0.0, 0.0, 0.7, 0.0])
    np.testing.assert_array_equal(cs.ranks[r8], [11, 11, 1, 11])
    assert cs.found_by("content").tolist() == [i == 8 for i in cs.item_idx.tolist()]
    # Sorted by fused score, which is the weighted reciprocal-rank sum.
    assert np.all(np.diff(cs.fused) <= 0)
    assert cs.item_idx[0] == 3  # the only item in three lists, ranked high in two


def test_default_missing_rank_is_beyond_every_list() -> None:
    cs = merge_candidates(_lists(), NAMES, 12)
    assert cs.missing_rank == 5  # longest list has 4 entries
    assert cs.ranks.max() == 5


def test_exclusions_and_filters_apply_as_masks_or_indices() -> None:
    excl = np.zeros(12, dtype=bool)
    excl[[3, 8]] = True
    cs = merge_candidates(_lists(), NAMES, 12, exclude=excl, fill_sources=())
    assert not set(cs.item_idx.tolist()) & {3, 8}
    cs2 = merge_candidates(
        _lists(), NAMES, 12, exclude=[3, 8], allowed=[1, 2, 5, 7, 9], fill_sources=()
    )
    assert set(cs2.item_idx.tolist()) == {1, 2, 5, 7, 9}


def test_fill_source_only_tops_up_to_min_candidates() -> None:
    lists = _lists()
    cs = merge_candidates(lists, NAMES, 12, min_candidates=0)
    # popularity-only items (1, 2, 4) do not join when there is no need.
    assert set(cs.item_idx.tolist()) == {3, 5, 7, 8, 9}
    # ... but popularity's score is still recorded for item 3, which others found.
    assert cs.scores[cs.item_idx.tolist().index(3), 3] == 20.0
    cs7 = merge_candidates(lists, NAMES, 12, min_candidates=7)
    assert len(cs7) == 7
    assert {1, 2} <= set(cs7.item_idx.tolist()) and 4 not in cs7.item_idx


def test_max_candidates_keeps_best_fused() -> None:
    full = merge_candidates(_lists(), NAMES, 12, fill_sources=())
    top3 = merge_candidates(_lists(), NAMES, 12, fill_sources=(), max_candidates=3)
    np.testing.assert_array_equal(top3.item_idx, full.item_idx[:3])


def test_empty_and_missing_sources() -> None:
    cs = merge_candidates({}, NAMES, 12)
    assert len(cs) == 0 and cs.scores.shape == (0, 4)
    cs = merge_candidates({"content": (np.array([2]), np.array([0.5]))}, NAMES, 12, exclude=[2])
    assert len(cs) == 0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValidationError, match="not in source_names"):
        merge_candidates({"ann": (np.array([1]), np.array([1.0]))}, NAMES, 12)
    with pytest.raises(ValidationError, match="outside"):
        merge_candidates({"content": (np.array([12]), np.array([1.0]))}, NAMES, 12)
    with pytest.raises(ValidationError, match="must match"):
        merge_candidates({"content": (np.array([1, 2]), np.array([1.0]))}, NAMES, 12)
    with pytest.raises(ValidationError, match="mask"):
        merge_candidates(_lists(), NAMES, 12, exclude=np.zeros(3, dtype=bool))


def test_top_n_excludes_and_orders() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 0.0, 2.0, 3.0]], dtype=np.float32)
    excl = np.array([[False, True, False, False], [False] * 4])
    idx, sc = top_n(scores, 3, excl)
    np.testing.assert_array_equal(idx, [[3, 2, 0], [3, 2, 0]])
    np.testing.assert_allclose(sc, [[0.7, 0.5, 0.1], [3.0, 2.0, 1.0]])
    idx, sc = top_n(scores, 4, excl)
    i, _ = finite_list(idx[0], sc[0])
    np.testing.assert_array_equal(i, [3, 2, 0])
