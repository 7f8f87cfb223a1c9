"""The ranker's training lists (training.models.ranking_lists): inner holdout, pooled folds."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.models.test_two_stage import N_USERS, _data
from training.models.ranking_lists import RankingLists, concat_lists, inner_holdout
from training.models.ranking_sources import user_histories


@pytest.mark.parametrize("kind", ["temporal", "random"])
def test_inner_holdout_partitions_train(kind: str) -> None:
    data, _ = _data()
    inner = inner_holdout(data, 0.25, kind, seed=3)
    hist, lab = inner.train.toarray(), inner.valid.toarray()
    np.testing.assert_array_equal(hist + lab, data.train.toarray())
    assert (lab.sum(axis=1) == 2).all()  # floor(0.25 * 8) per user
    assert inner.test.nnz == 0 and len(inner.train_interactions) == inner.train.nnz
    if kind == "temporal":
        for u, h in enumerate(user_histories(data.train_interactions, N_USERS)):
            assert set(np.flatnonzero(lab[u])) == set(h[-2:].tolist())
    again = inner_holdout(data, 0.25, kind, seed=3)
    np.testing.assert_array_equal(again.valid.toarray(), lab)


def test_inner_holdout_rolling_origin_drops_the_latest() -> None:
    data, _ = _data()
    inner = inner_holdout(data, 0.25, "temporal", seed=0, skip_frac=0.25)
    hist, lab = inner.train.toarray(), inner.valid.toarray()
    for u, h in enumerate(user_histories(data.train_interactions, N_USERS)):
        assert set(np.flatnonzero(lab[u])) == set(h[-4:-2].tolist())
        assert set(np.flatnonzero(hist[u])) == set(h[:-4].tolist())


def test_concat_lists_shifts_the_offsets_of_later_folds() -> None:
    def lists(lens: list[int], user: int) -> RankingLists:
        n = sum(lens)
        return RankingLists(
            features={"dense": np.full((n, 2), user, np.float32)},
            labels=np.arange(n, dtype=np.float32),
            offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
            n_relevant=np.ones(len(lens), np.int64), users=np.full(len(lens), user))

    one = lists([2, 3], 0)
    assert concat_lists([one]) is one
    pooled = concat_lists([one, lists([4], 1)])
    np.testing.assert_array_equal(pooled.offsets, [0, 2, 5, 9])
    np.testing.assert_array_equal(pooled.users, [0, 0, 1])
    assert len(pooled.labels) == 9 and pooled.features["dense"][5:, 0].tolist() == [1] * 4
