"""FeatureEncoder: vocabularies, query inputs and the JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import BundleError, ConfigError, ValidationError
from shared.model.features import FeatureEncoder
from tests.shared.model.conftest import tiny_items


def test_vocabularies(encoder: FeatureEncoder) -> None:
    assert encoder.genres == ["Action", "Comedy", "Drama"]
    assert encoder.item_genres == [[2], [1, 2], [], [0]]
    assert encoder.year_min == 1990
    # 1994 -> bucket 1, 2001 -> 3, unknown -> 0, 2013 -> 5
    assert encoder.item_year_buckets == [1, 3, 0, 5]
    assert encoder.n_year_buckets == 5
    assert encoder.user_feature_vocabs == {"gender": ["F", "M"], "age": ["18", "25"]}
    assert encoder.user_feature_rows == [[1, 2], [2, 1], [0, 2]]
    np.testing.assert_array_equal(encoder.user_index([9, 7, 12345]), [2, 1, 0])
    np.testing.assert_array_equal(encoder.item_index([40, 10, 99]), [3, 0, -1])
    np.testing.assert_array_equal(encoder.year_buckets([1980, 2100, None, 1999]), [1, 5, 0, 2])


def test_encode_queries_pads_and_profiles(encoder: FeatureEncoder) -> None:
    out = encoder.encode_queries(
        user_ids=[9, None, 555],
        histories=[[0, 1, 3, 1], [], [2]],
        user_features=[None, {"gender": "F", "age": 18.0}, {"age": 99}],
    )
    np.testing.assert_array_equal(out["user_id"], [2, 0, 0])
    # most recent last, only the last 3 kept, +1 offset, left padding with 0
    np.testing.assert_array_equal(out["history"], [[2, 4, 2], [0, 0, 0], [0, 0, 3]])
    # history items 1,3,1 -> genres Comedy+Drama, Action, Comedy+Drama -> counts A1 C2 D2
    np.testing.assert_allclose(out["genre_profile"][0], [0.2, 0.4, 0.4])
    np.testing.assert_allclose(out["genre_profile"][1], [0, 0, 0])
    np.testing.assert_allclose(out["genre_profile"][2], [0, 0, 0])  # item 2 has no genre
    # stored features for the known user, request features for the others, 0 = unknown
    np.testing.assert_array_equal(out["gender"], [2, 1, 0])
    np.testing.assert_array_equal(out["age"], [1, 1, 0])
    assert out["history"].dtype == np.int32 and out["genre_profile"].dtype == np.float32


def test_encode_queries_rejects_bad_input(encoder: FeatureEncoder) -> None:
    with pytest.raises(ValidationError, match="history item indices"):
        encoder.encode_queries(histories=[[4]])
    with pytest.raises(ValidationError, match="same length"):
        encoder.encode_queries(user_ids=[7, 9], histories=[[1]])


def test_json_round_trip(encoder: FeatureEncoder, tmp_path) -> None:
    path = tmp_path / "features.json"
    encoder.save(path)
    assert json.loads(path.read_text())["schema_version"] == 1
    loaded = FeatureEncoder.load(path)
    assert loaded.to_dict() == encoder.to_dict()
    args = ([7, None], [[0, 1], [3]], [None, {"gender": "M"}])
    a, b = encoder.encode_queries(*args), loaded.encode_queries(*args)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_ids_are_text_and_with_ids_renames_them(encoder: FeatureEncoder, tmp_path) -> None:
    """Training fits on integers; the bundle's encoder names the dataset's own string ids."""
    assert encoder.user_ids == ["7", "9", "11"] and encoder.item_ids == ["10", "20", "30", "40"]
    np.testing.assert_array_equal(encoder.user_index(["9", 7, "07"]), [2, 1, 0])
    renamed = encoder.with_ids(["cust-a", "cust-b", "cust-c"], ["s1", "s2", "s3", "s4"])
    path = tmp_path / "features.json"
    renamed.save(path)
    loaded = FeatureEncoder.load(path)
    np.testing.assert_array_equal(loaded.user_index(["cust-b", "9"]), [2, 0])
    np.testing.assert_array_equal(loaded.item_index(["s4", "s1", "40"]), [3, 0, -1])
    assert loaded.item_genres == encoder.item_genres  # only the names changed
    with pytest.raises(ConfigError, match="3 user and 4 item ids"):
        encoder.with_ids(["a"], ["b"])


def test_load_rejects_other_schema(encoder: FeatureEncoder, tmp_path) -> None:
    raw = encoder.to_dict()
    raw["schema_version"] = 99
    path = tmp_path / "features.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="schema version"):
        FeatureEncoder.load(path)
    with pytest.raises(BundleError, match="cannot read"):
        FeatureEncoder.load(tmp_path / "missing.json")


def test_no_user_features() -> None:
    enc = FeatureEncoder.fit([1, 2], tiny_items(), pd.DataFrame({"user_id": [1, 2]}))
    assert enc.user_feature_names == []
    assert set(enc.encode_queries([1], [[0]])) == {"user_id", "history", "genre_profile"}
