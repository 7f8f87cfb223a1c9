"""Statistics over seeds: means with bootstrap 95% intervals, paired differences.

Every seed is its own split, so a model's headline figure is the mean over
seeds of its per-seed mean. The seeds' splits share users (every user is in
every random split; a time cutoff gives the same test users for every seed),
so the seeds are not independent samples: intervals come from a *cluster*
bootstrap over users – each resample draws user ids with replacement and a
drawn user brings their values in every seed – and recompute the mean over
seeds of the per-seed (weighted) means. A difference between two models is
*paired*: both models are scored on the same users of the same seeds, and the
per-user differences are resampled together. A difference is called
significant only when its 95% interval excludes 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Bootstrap resamples.
N_BOOT = 2000
#: Interval level.
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval."""

    mean: float
    low: float
    high: float
    per_seed: tuple[float, ...]

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0 (meaningful for differences)."""
        return self.low > 0.0 or self.high < 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"mean": self.mean, "ci_low": self.low, "ci_high": self.high,
                "per_seed": list(self.per_seed), "significant": self.significant}

    def text(self, digits: int = 4) -> str:
        """``0.2200 [0.2100, 0.2300]``."""
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_mean(
    per_seed: Sequence[np.ndarray],
    ids: Sequence[np.ndarray] | None = None,
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Interval:
    """Mean over seeds of per-seed user means, with a cluster bootstrap interval.

    Args:
        per_seed: One [U_s] float array per seed (per-user values or paired
            per-user differences); a seed with no users is skipped.
        ids: Per seed, the [U_s] user ids of the values; a user present in several
            seeds is drawn (or not) in all of them together. None = every value
            is its own user.
        n_boot: Resamples.
        seed: Seed of the resampling.

    Returns:
        The :class:`Interval` (NaNs when no seed has users).
    """
    keep = [k for k, v in enumerate(per_seed) if len(v)]
    groups = [np.asarray(per_seed[k], dtype=np.float64) for k in keep]
    if not groups:
        nan = float("nan")
        return Interval(nan, nan, nan, ())
    rng = np.random.default_rng(seed)
    per_boot = np.full((n_boot, len(groups)), np.nan)
    if ids is None:  # independent users: resample within each seed (stratified)
        for k, g in enumerate(groups):
            per_boot[:, k] = g[rng.integers(0, len(g), size=(n_boot, len(g)))].mean(axis=1)
    else:
        id_groups = [np.asarray(ids[k]) for k in keep]
        universe, inverse = np.unique(np.concatenate(id_groups), return_inverse=True)
        bounds = np.cumsum([0] + [len(g) for g in groups])
        n = len(universe)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
        for k, g in enumerate(groups):
            w = weights[:, inverse[bounds[k]:bounds[k + 1]]]  # [B, U_k]
            den = w.sum(axis=1)
            per_boot[:, k] = np.divide(w @ g, den, out=np.full(n_boot, np.nan), where=den > 0)
    boots = np.nanmean(per_boot, axis=1)
    alpha = (1.0 - LEVEL) / 2.0
    lo, hi = np.nanquantile(boots, [alpha, 1.0 - alpha])
    means = tuple(float(g.mean()) for g in groups)
    return Interval(float(np.mean(means)), float(lo), float(hi), means)


def paired_difference(
    a: Sequence[tuple[np.ndarray, np.ndarray]],
    b: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Interval:
    """Paired bootstrap interval of mean(a - b) over the users both models evaluated.

    Args:
        a: Per seed, (user ids [U], values [U]) of model A; ids shared across
            seeds are resampled together (:func:`bootstrap_mean`).
        b: The same for model B (same seeds, same order).
        n_boot: Resamples.
        seed: Seed of the resampling.

    Returns:
        The :class:`Interval` of the difference A - B.

    Raises:
        ValueError: ``a`` and ``b`` cover different numbers of seeds.
    """
    if len(a) != len(b):
        raise ValueError(f"paired_difference needs the same seeds, got {len(a)} and {len(b)}")
    diffs, common = [], []
    for (ua, va), (ub, vb) in zip(a, b, strict=True):
        _, ia, ib = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
        diffs.append(np.asarray(va, np.float64)[ia] - np.asarray(vb, np.float64)[ib])
        common.append(np.asarray(ua)[ia])
    return bootstrap_mean(diffs, common, n_boot=n_boot, seed=seed)
