"""The two-tower model's training examples (training.models.two_tower_examples): no target
in its own query, histories and other items, item frequencies, serving histories."""

from __future__ import annotations

import numpy as np

from training.models.two_tower_examples import build_training_examples, last_items


def test_training_examples_leave_target_out() -> None:
    # user 0: items 5 (t=10), 6 (t=20), 7 (t=20), 8 (t=30); user 1: item 9 (t=5)
    ex = build_training_examples(
        np.array([0, 0, 1, 0, 0]), np.array([6, 5, 9, 8, 7]), np.array([20, 10, 5, 30, 20]), 10
    )
    np.testing.assert_array_equal(ex.item_idx, [5, 6, 7, 8, 9])
    hist = ex.histories(np.arange(5), 2)  # table indices = item + 1, most recent last
    np.testing.assert_array_equal(hist, [[0, 0], [0, 6], [0, 6], [7, 8], [0, 0]])
    np.testing.assert_array_equal(ex.user_table_index, [1, 1, 1, 1, 2])
    # "others" histories: the user's other items at any time, target left out
    others = ex.other_items(np.arange(5), 4, np.random.default_rng(0))
    np.testing.assert_array_equal(
        others, [[0, 7, 8, 9], [0, 6, 8, 9], [0, 6, 7, 9], [0, 6, 7, 8], [0, 0, 0, 0]]
    )
    drawn = ex.other_items(np.full(200, 1), 2, np.random.default_rng(0))  # 3 others, 2 slots
    assert set(np.unique(drawn)) == {6, 8, 9}  # never the target (table index 7)
    assert ex.item_counts[[5, 9, 0]].tolist() == [1, 1, 0]
    np.testing.assert_allclose(np.exp(ex.log_q[5]), 0.2)
    hists = last_items(
        np.array([0, 0, 1, 0]), np.array([6, 5, 9, 8]), np.array([20, 10, 5, 30]), 3, 2
    )
    assert [h.tolist() for h in hists] == [[6, 8], [9], []]
