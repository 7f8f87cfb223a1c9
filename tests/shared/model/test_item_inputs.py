"""The encoder's item side (shared.model.item_inputs): catalogue and new items' inputs."""

from __future__ import annotations

import numpy as np

from shared.model.features import FeatureEncoder


def test_encode_items_and_new_items(encoder: FeatureEncoder) -> None:
    content = np.arange(8, dtype=np.float32).reshape(4, 2)
    out = encoder.encode_items(content, use_ids=np.array([True, False, True, True]))
    np.testing.assert_array_equal(out["item_id"], [1, 0, 3, 4])
    np.testing.assert_array_equal(out["genres"][1], [0, 1, 1])
    np.testing.assert_array_equal(out["year_bucket"], [1, 3, 0, 5])
    sub = encoder.encode_items(content[[3]], item_idx=[3])
    np.testing.assert_array_equal(sub["item_id"], [4])
    new = encoder.encode_new_items(content[:2], [["Action", "Western"], []], [2003, None])
    np.testing.assert_array_equal(new["item_id"], [0, 0])
    np.testing.assert_array_equal(new["genres"], [[1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(new["year_bucket"], [3, 0])
