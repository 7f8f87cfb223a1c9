"""Raw feature values' canonical forms (shared.model.feature_values)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.model.feature_values import feature_value, genre_list, is_missing, year_bucket


def test_feature_value_is_canonical_text() -> None:
    assert feature_value(25.0) == "25" and feature_value(pd.NA) is None
    assert feature_value(np.int64(3)) == "3" and feature_value(float("nan")) is None


def test_missing_genres_and_year_buckets() -> None:
    assert is_missing(None) and is_missing(pd.NaT) and not is_missing(0)
    assert genre_list("Drama|(no genres listed)") == ["Drama"] and genre_list(None) == []
    assert [year_bucket(y, 1990, 5, 3) for y in (None, 1985, 1996, 2030)] == [0, 1, 2, 3]
