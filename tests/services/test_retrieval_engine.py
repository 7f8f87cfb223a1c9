"""Retrieval engine helpers whose cost must not follow the catalogue size."""

from __future__ import annotations

import numpy as np
import pytest

from services.retrieval.engine import most_popular


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


def test_most_popular_when_too_few_items_qualify() -> None:
    order = np.arange(10)[::-1].copy()
    exclude = np.zeros(10, dtype=bool)
    exclude[[9, 8, 7]] = True
    allowed = np.zeros(10, dtype=bool)
    allowed[[1, 8]] = True
    assert most_popular(order, 5, exclude, allowed).tolist() == [1]
    assert most_popular(order, 5, np.ones(10, dtype=bool), None).tolist() == []
    assert most_popular(order[:0], 5, exclude, None).tolist() == []
