"""Statistics over seeds: means with bootstrap 95% intervals, paired differences.

Every seed is its own split (its own users' test items), so a model's headline
figure is the mean over seeds of its per-seed mean. Intervals come from a
stratified bootstrap: each resample draws, within every seed, that seed's
evaluated users with replacement, and recomputes the mean over seeds of the
per-seed means. A difference between two models is *paired*: both models are
scored on the same users of the same seeds, and the per-user differences are
resampled together. A difference is called significant only when its 95%
interval excludes 0.
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
    per_seed: Sequence[np.ndarray], *, n_boot: int = N_BOOT, seed: int = 0
) -> Interval:
    """Mean over seeds of per-seed user means, with a stratified bootstrap interval.

    Args:
        per_seed: One [U_s] float array per seed (per-user values or paired
            per-user differences); a seed with no users is skipped.
        n_boot: Resamples.
        seed: Seed of the resampling.

    Returns:
        The :class:`Interval` (NaNs when no seed has users).
    """
    groups = [np.asarray(v, dtype=np.float64) for v in per_seed if len(v)]
    if not groups:
        nan = float("nan")
        return Interval(nan, nan, nan, ())
    rng = np.random.default_rng(seed)
    boots = np.zeros(n_boot, dtype=np.float64)
    for g in groups:
        idx = rng.integers(0, len(g), size=(n_boot, len(g)))
        boots += g[idx].mean(axis=1)
    boots /= len(groups)
    alpha = (1.0 - LEVEL) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
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
        a: Per seed, (user_idx [U], values [U]) of model A.
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
    diffs = []
    for (ua, va), (ub, vb) in zip(a, b, strict=True):
        _, ia, ib = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
        diffs.append(np.asarray(va, np.float64)[ia] - np.asarray(vb, np.float64)[ib])
    return bootstrap_mean(diffs, n_boot=n_boot, seed=seed)
