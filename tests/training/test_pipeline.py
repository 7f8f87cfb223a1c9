"""The real training pipeline on a small slice: the bundle it writes and its guarantees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts import bundle_layout as L
from shared.contracts.bundle import SCHEMA_VERSION, load_bundle, sha256_file
from shared.contracts.errors import BundleError
from shared.model.features import FeatureEncoder
from tests.support.small_bundle import FEEDBACK_EVENTS, next_item_wins

pytestmark = pytest.mark.slow


def test_manifest_lists_every_file_with_its_checksum(small_bundle: Path) -> None:
    folder = (small_bundle / "latest").resolve()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    assert set(manifest["files"]) == on_disk
    for rel in (L.ITEM_VECTORS, L.RANKER, L.ITEM_INDEX, L.ITEM_HNSW, L.CONTENT_HNSW):
        assert manifest["files"][rel]["sha256"] == sha256_file(folder / rel)
    assert manifest["dataset"]["name"] == "ml-latest-small"
    assert len(manifest["dataset"]["sha256"]) == 64
    assert manifest["metrics"]["ann_recall@100_item_tower"] >= 0.9
    # Trained with "hnsw": true: both HNSW graphs, their parameters and recall.
    assert manifest["metrics"]["hnsw_recall@100_item_tower"] >= 0.9
    assert manifest["metrics"]["hnsw_recall@100_content"] >= 0.9
    hnsw = manifest["components"]["hnsw"]
    assert hnsw["item_tower"]["kind"] == hnsw["content"]["kind"] == "hnsw"
    assert hnsw["content"]["dim"] == manifest["components"]["content_dim"]
    assert hnsw["item_tower"]["n_items"] == manifest["components"]["n_items"]
    assert manifest["components"]["sources"][0] == "two_tower"
    assert set(manifest["components"]["timings_s"]) >= {"load data", "BERT item embeddings"}


def test_bundle_vectors_are_aligned_and_normalised(small_bundle: Path) -> None:
    bundle = load_bundle(small_bundle)
    items = bundle.load_parquet(L.ITEMS)
    content = bundle.load_npy(L.CONTENT_VECTORS)
    vectors = bundle.load_npy(L.ITEM_VECTORS)
    encoder = FeatureEncoder.load(bundle.path(L.FEATURES))
    assert encoder.item_ids == items["item_id"].tolist()
    assert all(isinstance(i, str) for i in encoder.item_ids)  # MovieLens ids as "296"
    assert content.shape == (len(items), 384) and vectors.shape[0] == len(items)
    np.testing.assert_allclose(np.linalg.norm(content, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_known_user_vector_prefers_their_next_items_over_random(small_bundle: Path) -> None:
    wins = next_item_wins(small_bundle)
    # A random model wins about 30 of 60; 38 or more has p < 0.03 under chance.
    assert wins >= 38, wins


def test_tampered_bundle_is_refused(small_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree((small_bundle / "latest").resolve(), copy)
    target = copy / L.ITEM_VECTORS
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"item_vectors\.npy"):
        load_bundle(copy)


def test_exported_feedback_events_reach_the_bundle(small_bundle: Path) -> None:
    """The small bundle is trained with ``--events``: they end its user's history."""
    events = pd.read_parquet(small_bundle.parent / FEEDBACK_EVENTS)
    assert len(events) == 3 and events["user_id"].nunique() == 1
    bundle = load_bundle(small_bundle)
    users = bundle.load_parquet(L.USERS).set_index("user_id")
    history = list(users.loc[events["user_id"].iloc[0], "history"])  # string ids both
    assert history[-3:] == events.sort_values("timestamp")["item_id"].tolist()
    assert bundle.manifest["dataset"]["events_folded"] == 3
