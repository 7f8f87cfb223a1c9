"""Small numpy helpers of candidate generation: popularity and vectors."""

from __future__ import annotations

import numpy as np


def most_popular(
    order: np.ndarray,
    k: int,
    exclude: np.ndarray,
    allowed: np.ndarray | None,
    n_excluded: int | None = None,
) -> np.ndarray:
    """The first ``k`` positions of ``order`` not excluded (and allowed), in order.

    Scans growing windows of ``order`` instead of the whole catalogue, so the cost
    follows the number of excluded or filtered-out items, not the catalogue size.
    ``n_excluded`` is ``exclude.sum()`` when the caller has counted it already.
    """
    found: list[np.ndarray] = []
    have, start = 0, 0
    if n_excluded is None:
        n_excluded = int(np.count_nonzero(exclude))
    step = k + n_excluded if allowed is None else 4 * k
    while have < k and start < len(order):
        window = order[start : start + step]
        ok = ~exclude[window]
        if allowed is not None:
            ok &= allowed[window]
        found.append(window[ok])
        have += int(ok.sum())
        start += step
        step *= 4
    return np.concatenate(found)[:k] if found else order[:0]


def normalise(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length (a zero vector stays zero)."""
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v
