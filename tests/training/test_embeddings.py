"""Item embeddings with the real BERT encoder and the on-disk cache."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import DataError
from shared.model.text import TextEncoder
from training.embeddings import KEYS_FILE, VECTORS_FILE, embed_items, item_texts


class CountingEncoder:
    """Wraps the real encoder and records every text it is asked to embed."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def encoded(self) -> int:
        return sum(len(c) for c in self.calls)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.encode(texts)


@pytest.fixture(scope="module")
def real_encoder() -> Iterator[TextEncoder]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield TextEncoder(batch_size=8, num_threads=1)


def catalogue() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [1, 2, 3, 4, 5],
            "title": ["Alien", "Notting Hill", "Heat", "Toy Story", "Alien"],
            "year": pd.array([1979, 1999, 1995, None, 1979], dtype="Int64"),
            "genres": [
                ["Horror", "Sci-Fi"],
                ["Comedy", "Romance"],
                ["Crime"],
                [],
                ["Horror", "Sci-Fi"],
            ],
            "tags": [["space"], ["london"], ["heist", "los angeles"], ["pixar"], ["space"]],
            "overview": [None, "A bookshop owner falls for a star.", None, None, None],
        }
    )


def test_cache_avoids_re_encoding_and_tracks_changes(
    real_encoder: TextEncoder, tmp_path: Path
) -> None:
    items = catalogue()
    enc = CountingEncoder(real_encoder)
    first = embed_items(items, enc, tmp_path, progress=False)
    assert first.shape == (5, 384) and first.dtype == np.float32
    assert enc.encoded == 4  # rows 0 and 4 share the same text: embedded once
    np.testing.assert_allclose(first[0], first[4])
    direct = real_encoder.encode(item_texts(items))
    np.testing.assert_allclose(first, direct, atol=1e-5)
    folder = tmp_path / real_encoder.model_id
    assert np.load(folder / KEYS_FILE, allow_pickle=False).shape == (4,)

    second = embed_items(items, CountingEncoder(real_encoder), tmp_path, progress=False)
    enc2 = CountingEncoder(real_encoder)
    reordered = embed_items(items.iloc[::-1], enc2, tmp_path, progress=False)
    assert enc2.encoded == 0
    np.testing.assert_array_equal(second, first)
    np.testing.assert_array_equal(reordered, first[::-1])

    changed = items.copy()
    changed.at[2, "overview"] = "A detective hunts a master thief."
    enc3 = CountingEncoder(real_encoder)
    third = embed_items(changed, enc3, tmp_path, progress=False)
    assert enc3.calls == [[item_texts(changed)[2]]]
    np.testing.assert_array_equal(third[[0, 1, 3, 4]], first[[0, 1, 3, 4]])
    assert float(third[2] @ first[2]) < 0.99
    assert np.load(folder / VECTORS_FILE, allow_pickle=False).shape == (5, 384)


def test_interrupted_cache_write_keeps_a_consistent_prefix(
    real_encoder: TextEncoder, tmp_path: Path
) -> None:
    items = catalogue().iloc[:4]
    full = embed_items(items, real_encoder, tmp_path, progress=False)
    folder = tmp_path / real_encoder.model_id
    vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
    np.save(folder / VECTORS_FILE, vectors[:2], allow_pickle=False)  # keys now longer
    enc = CountingEncoder(real_encoder)
    again = embed_items(items, enc, tmp_path, progress=False)
    assert enc.encoded == 2
    np.testing.assert_allclose(again, full, atol=1e-6)


def test_without_cache_and_bad_input(real_encoder: TextEncoder) -> None:
    enc = CountingEncoder(real_encoder)
    out = embed_items(catalogue().iloc[:2], enc, None, chunk_size=1, progress=False)
    assert out.shape == (2, 384) and len(enc.calls) == 2
    assert embed_items(catalogue().iloc[:0], enc, None, progress=False).shape == (0, 384)
    with pytest.raises(DataError, match="'title' column"):
        embed_items(pd.DataFrame({"item_id": [1]}), enc, None)


def test_vectors_reach_the_cache_while_embedding_so_a_killed_run_keeps_them(
    real_encoder: TextEncoder, tmp_path: Path
) -> None:
    """With ``save_every_s=0`` every chunk is on disk before the next one is encoded."""
    items = catalogue().iloc[:4]
    folder = tmp_path / real_encoder.model_id
    on_disk: list[int] = []

    class Watching(CountingEncoder):
        def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
            keys = folder / KEYS_FILE
            on_disk.append(len(np.load(keys, allow_pickle=False)) if keys.is_file() else 0)
            return super().encode(texts)

    full = embed_items(items, Watching(real_encoder), tmp_path, chunk_size=1, progress=False,
                       save_every_s=0.0)
    assert on_disk == [0, 1, 2, 3]  # chunk k was saved before chunk k + 1 started
    enc = CountingEncoder(real_encoder)
    np.testing.assert_allclose(embed_items(items, enc, tmp_path, progress=False), full,
                               atol=1e-6)
    assert enc.encoded == 0
