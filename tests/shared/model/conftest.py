"""A tiny catalogue and users, and a feature encoder fitted on them, for the model tests."""

from __future__ import annotations

import pandas as pd
import pytest

from shared.model.features import FeatureEncoder


def tiny_items() -> pd.DataFrame:
    """Four items: years with one unknown, genre lists with MovieLens' 'no genres' marker."""
    return pd.DataFrame(
        {
            "item_id": [10, 20, 30, 40],
            "title": ["a", "b", "c", "d"],
            "year": pd.array([1994, 2001, None, 2013], dtype="Int64"),
            "genres": [["Drama"], ["Comedy", "Drama"], ["(no genres listed)"], ["Action"]],
        }
    )


def tiny_users() -> pd.DataFrame:
    """Three users with gender and age, one gender unknown."""
    return pd.DataFrame(
        {
            "user_id": [7, 9, 11],
            "gender": ["F", "M", None],
            "age": pd.array([25, 18, 25], dtype="Int64"),
        }
    )


@pytest.fixture
def encoder() -> FeatureEncoder:
    return FeatureEncoder.fit(
        [7, 9, 11], tiny_items(), tiny_users(), history_length=3, year_bucket_size=5
    )
