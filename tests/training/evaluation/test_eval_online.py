"""Online protocol: events are the first half of each test user's items in time order."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from training.data.dataset import Dataset
from training.evaluation.base import EvalData
from training.evaluation.baselines import EASE, Popularity
from training.evaluation.online import (
    EASEFoldIn,
    fold_in_adapter,
    online_split,
    run_online,
)
from training.splits import make_split


def _split(ds: Dataset) -> tuple[EvalData, object]:
    sp_ = make_split(ds, "random", k_core=5, seed=4)
    return EvalData.from_split(ds, sp_), sp_


def test_events_are_the_earlier_half_and_targets_the_rest(synth_ds: Dataset) -> None:
    data, split = _split(synth_ds)
    osp = online_split(data, split.test)  # type: ignore[attr-defined]
    test = split.test  # type: ignore[attr-defined]
    checked = 0
    for uid, rows in test.groupby("user_id"):
        u = int(np.searchsorted(data.user_ids, uid))
        items = np.searchsorted(data.item_ids, rows.sort_values(["timestamp", "item_id"])
                                ["item_id"].to_numpy())
        half = len(items) // 2 if len(items) >= 2 else 0
        assert list(osp.events[u]) == list(items[:half])
        target = osp.targets.indices[osp.targets.indptr[u]:osp.targets.indptr[u + 1]]
        assert sorted(target) == (sorted(items[half:]) if half else [])
        seen = set(osp.seen.indices[osp.seen.indptr[u]:osp.seen.indptr[u + 1]])
        assert set(osp.events[u]) <= seen and not set(target) & seen
        checked += half > 0
    assert checked >= 10
    with_ev = osp.with_events()
    u = next(k for k, e in enumerate(osp.events) if len(e))
    assert list(with_ev[u][-len(osp.events[u]):]) == list(osp.events[u])


def test_ease_fold_in_is_x_b_of_the_updated_history(synth_ds: Dataset) -> None:
    data, split = _split(synth_ds)
    ease = EASE(lam=10.0)
    ease.fit(data)
    scorer = fold_in_adapter(ease)
    assert isinstance(scorer, EASEFoldIn)
    assert fold_in_adapter(Popularity()) is None
    osp = online_split(data, split.test)  # type: ignore[attr-defined]
    users = np.arange(8)
    plain = scorer.score_histories(users, [osp.histories[u] for u in users])
    assert np.allclose(plain, ease.score(users), atol=1e-5)
    ev = sp.csr_matrix((np.ones(sum(len(osp.events[u]) for u in users)),
                        (np.repeat(users, [len(osp.events[u]) for u in users]),
                         np.concatenate([osp.events[u] for u in users]))),
                       shape=(len(users), data.n_items))
    folded = scorer.score_histories(users, [osp.with_events()[u] for u in users])
    expected = np.asarray((data.train[users] + ev) @ ease._b)
    assert np.allclose(folded, expected, atol=1e-5)
    assert not np.allclose(folded, plain)

    res = run_online(scorer, data, osp, ks=(10,))
    assert set(res) == {"with", "without"}
    assert np.array_equal(res["with"].users, res["without"].users)
    assert len(res["with"].users) == int((np.diff(osp.targets.indptr) > 0).sum())
