"""Bootstrap intervals over seeds and paired differences."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation.stats import bootstrap_mean, paired_difference


def test_interval_brackets_the_mean_and_narrows_with_more_users() -> None:
    rng = np.random.default_rng(0)
    small = bootstrap_mean([rng.random(50), rng.random(50)])
    large = bootstrap_mean([rng.random(5000), rng.random(5000)])
    assert small.low < small.mean < small.high
    assert large.low < large.mean < large.high
    assert (large.high - large.low) < (small.high - small.low) / 5
    assert large.mean == pytest.approx(0.5, abs=0.02)
    assert len(small.per_seed) == 2


def test_mean_is_the_mean_of_per_seed_means() -> None:
    iv = bootstrap_mean([np.array([1.0, 1.0, 1.0, 1.0]), np.array([0.0, 0.0])])
    assert iv.mean == pytest.approx(0.5)
    assert iv.low == pytest.approx(0.5) and iv.high == pytest.approx(0.5)
    assert iv.per_seed == (1.0, 0.0)


def test_paired_difference_detects_a_consistent_gain_but_not_noise() -> None:
    rng = np.random.default_rng(1)
    users = np.arange(400)
    base = rng.random(400)
    better = base + 0.02  # every user gains a little: large per-user spread, clear pairing
    noise = base + rng.normal(0, 0.05, 400)
    seeds_a = [(users, better), (users, better[::-1])]
    seeds_b = [(users, base), (users, base[::-1])]
    gain = paired_difference(seeds_a, seeds_b)
    assert gain.significant and gain.low > 0
    assert gain.mean == pytest.approx(0.02)
    null = paired_difference([(users, noise - noise.mean() + base.mean())], [(users, base)])
    assert not null.significant
    assert null.low < 0 < null.high


def test_pairs_by_user_id_and_refuses_different_seed_counts() -> None:
    a = [(np.array([1, 2, 3]), np.array([1.0, 1.0, 1.0]))]
    b = [(np.array([2, 3, 4]), np.array([0.0, 0.5, 9.0]))]
    diff = paired_difference(a, b)
    assert diff.mean == pytest.approx(0.75)  # users 2 and 3 only
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference(a, a + a)


def test_seeds_sharing_users_are_not_counted_as_independent_samples() -> None:
    rng = np.random.default_rng(2)
    users = np.arange(200)
    vals = rng.random(200)
    one = bootstrap_mean([vals], [users])
    # The same users with the same values in three seeds (a time cutoff does that):
    # no more information than one seed, so the interval must not shrink.
    three = bootstrap_mean([vals, vals, vals], [users, users, users])
    assert (three.high - three.low) == pytest.approx(one.high - one.low, rel=0.15)
    # Treated as independent users, the interval would shrink by about sqrt(3).
    naive = bootstrap_mean([vals, vals, vals])
    assert (naive.high - naive.low) < 0.7 * (three.high - three.low)
