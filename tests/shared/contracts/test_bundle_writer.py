"""BundleWriter (shared.contracts.bundle_writer): guards, and a failed writer leaves nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.contracts.bundle import MANIFEST
from shared.contracts.bundle_writer import BundleWriter
from shared.contracts.errors import BundleError, ConfigError

VECTORS = np.arange(24, dtype=np.float32).reshape(6, 4) / 7.0
DATASET = {"name": "toy", "sha256": "ab" * 32, "n_items": 3}


def test_writer_guards(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), BundleWriter(tmp_path, "20260101-000000-0000000a") as w:
        w.save_npy("a.npy", VECTORS)
        raise RuntimeError("training crashed")
    assert list(tmp_path.iterdir()) == []

    writer = BundleWriter(tmp_path)
    for bad in ("../escape.npy", "/abs.npy", MANIFEST, "a/../../b"):
        with pytest.raises(ConfigError):
            writer.path(bad)
    with pytest.raises(ConfigError, match="pickle"):
        writer.save_npy("obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ConfigError, match="sha256"):
        writer.finalize(dataset={"name": "x"}, config={}, metrics={}, components={})
    done = writer.finalize(dataset=DATASET, config={}, metrics={}, components={})
    with pytest.raises(BundleError, match="already finalized"):
        writer.path("late.npy")
    with pytest.raises(BundleError, match="already exists"):
        BundleWriter(tmp_path, done.name)
