"""Every model a bookshop bundle exports reads the attributes, loads back with
``safe_mode=True`` and predicts; the serving numerics (numpy forward pass, the encoder on the
catalogue's raw attribute arrays, a run-time copy of an item, request-time user attributes)
reproduce what training computed.

The bookshop's items have categories and authors (lists), price, pages and year (numeric);
its users a country (categorical) and an age (numeric). Categories and year feed the genre
multi-hot and year bucket; the others the attribute inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import shared.model.layers  # noqa: F401  (registers the custom layers)
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import Bundle, load_bundle
from shared.model.candidates import CandidateSet
from shared.model.catalogue import Catalogue
from shared.model.features import FeatureEncoder
from shared.model.numpy_forward import NumpyForward
from shared.model.ranker_features import RankerFeatureTables, candidate_features
from shared.model.ranker_serving import RankerScorer
from training.models.towers import tower_inputs

TOL = 2e-5


@pytest.fixture(scope="module")
def bundle(bookshop_bundle: tuple[Path, Path]) -> Bundle:
    return load_bundle(bookshop_bundle[1])


@pytest.fixture(scope="module")
def encoder(bundle: Bundle) -> FeatureEncoder:
    return FeatureEncoder.load(bundle.path(L.FEATURES))


def _load(bundle: Bundle, rel: str) -> Any:
    return keras.saving.load_model(bundle.path(rel), safe_mode=True)


def _same(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Keras' output, after checking the numpy forward pass gives the same."""
    feed = tower_inputs(model, inputs)
    want = np.asarray(model.predict(feed, verbose=0), np.float32)
    got = NumpyForward(model)(feed)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=TOL)
    return want


def test_the_encoder_and_its_attributes_are_in_the_bundle(bundle: Bundle,
                                                          encoder: FeatureEncoder) -> None:
    files = bundle.manifest["files"]
    for rel in ("two_tower/attributes.json", "two_tower/attributes.npz",
                "ranker/ranker_attributes.json", "ranker/ranker_attributes.npz"):
        assert rel in files and len(files[rel]["sha256"]) == 64
    assert encoder.attributes is not None
    assert encoder.attributes.item.names == ["authors", "price", "pages"]
    assert encoder.attributes.user.names == ["country", "age"]
    assert encoder.attribute_sources == {"genres": "categories", "year": "year"}
    assert encoder.n_genres == 12


def test_query_tower_round_trip_for_known_anonymous_and_described_users(
        bundle: Bundle, encoder: FeatureEncoder) -> None:
    tower = _load(bundle, L.QUERY_TOWER)
    names = {t.name for t in tower.inputs}
    assert {"user_cat_0", "user_num"} <= names
    users = [encoder.user_ids[0], encoder.user_ids[1], None, None, "no-such-user"]
    feats: list[dict[str, Any] | None] = [None, {"country": "FR", "age": 70}, None,
                                          {"country": "DE", "age": 30}, {"country": "XX"}]
    inputs = encoder.encode_queries(users, [[0, 1], [2], [], [3, 4], []], feats)
    out = _same(tower, inputs)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert inputs["user_cat_0"][2].tolist() == [0] and inputs["user_num"][2].tolist() == [0, 1]
    plain = encoder.encode_queries([None], [[3, 4]], None)
    # an anonymous visitor's attributes move their vector
    assert not np.allclose(_same(tower, plain)[0], out[3], atol=1e-4)


def test_candidate_tower_round_trip_and_a_fresh_copy_of_an_item(
        bundle: Bundle, encoder: FeatureEncoder) -> None:
    tower = _load(bundle, L.CANDIDATE_TOWER)
    assert {"item_cat_0", "item_num"} <= {t.name for t in tower.inputs}
    content = bundle.load_npy(L.CONTENT_VECTORS)
    idx = np.arange(12)
    stored = _same(tower, encoder.encode_items(content[idx], idx, use_ids=False))
    # the same items posted at run time (POST /v1/items: attributes only, no genres/year)
    catalogue = Catalogue.from_frame(bundle.load_parquet(L.ITEMS),
                                     bundle.manifest["components"][L.ATTRIBUTES_COMPONENT])
    attrs = [catalogue.attributes(int(i)) for i in idx]
    fresh = encoder.encode_new_items(content[idx], [[]] * len(idx), [None] * len(idx), attrs)
    np.testing.assert_allclose(_same(tower, fresh), stored, atol=TOL)


def test_the_catalogue_arrays_encode_to_the_stored_rows(bundle: Bundle,
                                                         encoder: FeatureEncoder) -> None:
    catalogue = Catalogue.from_frame(bundle.load_parquet(L.ITEMS),
                                     bundle.manifest["components"][L.ATTRIBUTES_COMPONENT])
    side = encoder.attributes.item  # type: ignore[union-attr]
    columns = {**catalogue.categorical, **{k: v.tolist() for k, v in catalogue.numeric.items()}}
    got = side.encode_columns(columns, len(catalogue))
    stored = side.rows(np.arange(len(catalogue)))
    assert set(got) == set(stored)
    for k in stored:
        np.testing.assert_array_equal(got[k], stored[k])


def _candidates(tables: RankerFeatureTables, items: np.ndarray) -> CandidateSet:
    m, s = len(items), len(tables.source_names)
    scores = np.tile(np.linspace(1.0, 0.1, m, dtype=np.float32)[:, None], (1, s))
    ranks = np.tile(np.arange(1, m + 1, dtype=np.int32)[:, None], (1, s))
    return CandidateSet(items.astype(np.int64), scores, ranks,
                        np.full(m, (1 << s) - 1, np.int64), scores[:, 0].copy(),
                        tables.source_names, 51)


def test_ranker_round_trip_numpy_equals_keras_with_user_attributes(bundle: Bundle) -> None:
    tables = RankerFeatureTables.load(bundle.path(L.RANKER).parent)
    assert tables.attributes is not None
    model = _load(bundle, L.RANKER)
    assert {"item_cat_0", "item_num", "user_cat_0", "user_num"} <= {t.name for t in model.inputs}
    scorer = RankerScorer(bundle.path(L.RANKER), tables)
    cands = _candidates(tables, np.arange(30))
    hist = np.array([40, 41, 42])
    cases = [(0, None), (-1, None), (-1, {"country": "FR", "age": 25}),
             (0, {"country": "IT"}), (-1, {"country": "XX", "age": "n/a"})]
    scores = []
    for user, given in cases:
        feats = candidate_features(tables, user, hist, cands, given)
        eager = scorer.score(feats, "eager")
        np.testing.assert_allclose(scorer.score(feats, "numpy"), eager, atol=TOL)
        keras_mean = np.asarray(model.predict(feats, verbose=0)).reshape(len(eager), -1).mean(1)
        np.testing.assert_allclose(eager, keras_mean, atol=TOL)
        scores.append(eager)
    anon = candidate_features(tables, -1, hist, cands)
    assert (anon["user_cat_0"] == 0).all() and (anon["user_num"][:, 1] == 1).all()
    assert not np.allclose(scores[1], scores[2])  # an anonymous user's country counts
    assert not np.allclose(scores[0], scores[3])  # a request overrides the stored country
