"""The encoder's item side (shared.model.item_inputs): catalogue and new items' inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.model.features import FeatureEncoder


def _items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [10, 20, 30, 40],
            "title": ["a", "b", "c", "d"],
            "year": pd.array([1994, 2001, None, 2013], dtype="Int64"),
            "genres": [["Drama"], ["Comedy", "Drama"], ["(no genres listed)"], ["Action"]],
        }
    )


def _users() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [7, 9, 11],
            "gender": ["F", "M", None],
            "age": pd.array([25, 18, 25], dtype="Int64"),
        }
    )


@pytest.fixture
def encoder() -> FeatureEncoder:
    return FeatureEncoder.fit([7, 9, 11], _items(), _users(), history_length=3, year_bucket_size=5)


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
