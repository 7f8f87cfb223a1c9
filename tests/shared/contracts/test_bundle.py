"""The versioned artifact bundle: resolve, verify, load and refuse (written with BundleWriter)."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.bundle import (
    LATEST_FILE,
    LATEST_LINK,
    MANIFEST,
    SCHEMA_VERSION,
    list_bundles,
    load_bundle,
    prune,
    resolve_bundle,
    sha256_file,
)
from shared.contracts.bundle_writer import BundleWriter, switch_latest
from shared.contracts.errors import BundleError, ConfigError

VECTORS = np.arange(24, dtype=np.float32).reshape(6, 4) / 7.0
ITEMS = pd.DataFrame({"item_id": [10, 20, 30], "title": ["A", "B", "C"]})
DATASET = {"name": "toy", "sha256": "ab" * 32, "n_items": 3}


def make_bundle(root: Path, version: str | None = None, *, set_latest: bool = True) -> Path:
    writer = BundleWriter(root, version)
    writer.save_npy("vectors.npy", VECTORS)
    writer.save_json("meta/popular.json", [{"item_id": 10, "score": np.float32(0.5)}])
    writer.save_parquet("items.parquet", ITEMS)
    writer.path("index/items.ann").write_bytes(b"\x00\x01annoy-bytes" * 10)
    return writer.finalize(
        dataset=DATASET,
        config={"epochs": 2, "lr": 1e-3},
        metrics={"recall@10": 0.25, "undefined": float("nan")},
        components={"annoy": {"n_trees": 10, "dim": 4}},
        set_latest=set_latest,
    )


def test_round_trip(tmp_path: Path) -> None:
    bundle_dir = make_bundle(tmp_path, "20260101-000000-0000000a")
    assert bundle_dir == tmp_path / "20260101-000000-0000000a"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    bundle = load_bundle(tmp_path)
    assert bundle.root == bundle_dir
    assert bundle.version == "20260101-000000-0000000a"
    m = bundle.manifest
    assert m["schema_version"] == SCHEMA_VERSION
    assert m["dataset"] == DATASET
    assert m["config"] == {"epochs": 2, "lr": 1e-3}
    assert m["metrics"] == {"recall@10": 0.25, "undefined": None}
    assert m["components"]["annoy"] == {"n_trees": 10, "dim": 4}
    assert datetime.fromisoformat(m["created_at"]).utcoffset() is not None
    assert set(m["libraries"]) >= {"keras", "annoy", "numpy", "sentence-transformers"}
    assert m["libraries"]["numpy"] == np.__version__
    assert isinstance(m["hybridrec_version"], str) and m["hybridrec_version"]
    expected_files = {"vectors.npy", "meta/popular.json", "items.parquet", "index/items.ann"}
    assert set(m["files"]) == expected_files
    for rel, meta in m["files"].items():
        data = (bundle_dir / rel).read_bytes()
        assert meta == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    vectors = bundle.load_npy("vectors.npy")
    assert isinstance(vectors, np.memmap) and not vectors.flags.writeable
    np.testing.assert_array_equal(vectors, VECTORS)
    np.testing.assert_array_equal(bundle.load_npy("vectors.npy", mmap=False), VECTORS)
    assert bundle.load_json("meta/popular.json") == [{"item_id": 10, "score": 0.5}]
    pd.testing.assert_frame_equal(bundle.load_parquet("items.parquet"), ITEMS)
    with pytest.raises(BundleError, match=r"no file 'nope.npy'"):
        bundle.path("nope.npy")


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    bundle_dir = make_bundle(tmp_path)
    target = bundle_dir / "index" / "items.ann"
    data = bytearray(target.read_bytes())
    data[5] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"index/items\.ann: sha256 mismatch") as info:
        load_bundle(tmp_path)
    assert hashlib.sha256(bytes(data)).hexdigest() in str(info.value)
    # verify=False only checks presence and sizes (the byte flip keeps the size).
    assert load_bundle(tmp_path, verify=False).version == bundle_dir.name


def test_missing_resized_and_unlisted_files_are_refused(tmp_path: Path) -> None:
    bundle_dir = make_bundle(tmp_path)
    (bundle_dir / "vectors.npy").unlink()
    with pytest.raises(BundleError, match=r"vectors\.npy: missing file"):
        load_bundle(bundle_dir)
    with pytest.raises(BundleError, match=r"vectors\.npy: missing file"):
        load_bundle(bundle_dir, verify=False)

    other = make_bundle(tmp_path / "b")
    with open(other / "items.parquet", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(BundleError, match=r"items\.parquet: size mismatch, expected \d+ bytes"):
        load_bundle(other)

    third = make_bundle(tmp_path / "c")
    (third / "extra_model.keras").write_bytes(b"sneaky")
    with pytest.raises(BundleError, match=r"extra_model\.keras: file not listed"):
        load_bundle(third)


def test_wrong_schema_version_is_refused(tmp_path: Path) -> None:
    bundle_dir = make_bundle(tmp_path)
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 98
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError, match=rf"expected {SCHEMA_VERSION}, found {SCHEMA_VERSION + 98}"
    ):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="retrain with this version of hybridrec"):
        load_bundle(tmp_path, verify=False)


def test_truncated_or_missing_manifest_is_refused(tmp_path: Path) -> None:
    bundle_dir = make_bundle(tmp_path)
    text = (bundle_dir / MANIFEST).read_text()
    (bundle_dir / MANIFEST).write_text(text[: len(text) // 2])
    with pytest.raises(BundleError, match=r"manifest\.json is not valid JSON.*truncated"):
        load_bundle(bundle_dir)
    (bundle_dir / MANIFEST).unlink()
    # Without a manifest the folder is no longer a bundle, and latest points at nothing.
    with pytest.raises(BundleError, match=r"has no manifest\.json"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="neither a bundle"):
        load_bundle(bundle_dir)


def test_latest_switches_to_newest_and_resolve(tmp_path: Path) -> None:
    first = make_bundle(tmp_path, "20260101-000000-0000000a")
    assert resolve_bundle(tmp_path) == first
    second = make_bundle(tmp_path, "20260102-000000-0000000b")
    assert resolve_bundle(tmp_path) == second
    assert (tmp_path / LATEST_LINK).is_symlink()
    assert os.readlink(tmp_path / LATEST_LINK) == second.name
    assert (tmp_path / LATEST_FILE).read_text().strip() == second.name
    third = make_bundle(tmp_path, "20260103-000000-0000000c", set_latest=False)
    assert resolve_bundle(tmp_path) == second
    assert load_bundle(tmp_path).version == second.name

    assert resolve_bundle(first) == first
    assert resolve_bundle(third) == third
    assert resolve_bundle(third / MANIFEST) == third
    assert list_bundles(tmp_path) == [first, second, third]

    # Without the symlink (platforms lacking them), the LATEST file is followed.
    (tmp_path / LATEST_LINK).unlink()
    switch_latest(tmp_path, first.name)
    (tmp_path / LATEST_LINK).unlink()
    assert resolve_bundle(tmp_path) == first


def test_resolve_refuses_non_bundles(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        resolve_bundle(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="neither a bundle"):
        resolve_bundle(tmp_path / "empty")
    make_bundle(tmp_path / "unlinked", "20260101-000000-0000000a", set_latest=False)
    with pytest.raises(BundleError, match="bundles found: 20260101-000000-0000000a"):
        resolve_bundle(tmp_path / "unlinked")


def test_prune_keeps_newest_and_latest(tmp_path: Path) -> None:
    versions = [f"2026010{i}-000000-0000000{i}" for i in range(1, 5)]
    for v in versions:
        make_bundle(tmp_path, v)
    switch_latest(tmp_path, versions[0])
    removed = prune(tmp_path, keep=2)
    assert [p.name for p in removed] == [versions[1]]
    assert [p.name for p in list_bundles(tmp_path)] == [versions[0], versions[2], versions[3]]
    assert load_bundle(tmp_path).version == versions[0]
    with pytest.raises(ConfigError):
        prune(tmp_path, keep=0)


def test_sha256_streams_in_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 + 17)
    file = tmp_path / "blob.bin"
    file.write_bytes(data)
    assert sha256_file(file, chunk_size=1024) == hashlib.sha256(data).hexdigest()
