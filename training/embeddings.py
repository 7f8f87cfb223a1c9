"""BERT content embeddings of the item catalogue, with an on-disk cache.

The cache lives in ``cache_dir/<model_id>/`` as two ``.npy`` files (no pickle):

* ``keys.npy``: ``|S32`` raw sha256 digests of each cached item text, [m];
* ``vectors.npy``: float32 [m, dim], row i embeds the text with key i.

The cache is append-only: new rows go at the end and both files are replaced
atomically (vectors first, then keys), so a reader always sees a consistent
prefix of ``min(len(keys), len(vectors))`` rows even after a crash between
the two renames. Items whose text did not change are never embedded again;
an item whose title, tags or overview changed gets a new key and is re-embedded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from shared.contracts.errors import DataError
from shared.model.text import item_text

log = logging.getLogger(__name__)

KEY_DTYPE = np.dtype("S32")
KEYS_FILE = "keys.npy"
VECTORS_FILE = "vectors.npy"
DEFAULT_CHUNK = 512


class Encoder(Protocol):
    """What :func:`embed_items` needs from an encoder (``shared.model.text.TextEncoder``)."""

    @property
    def model_id(self) -> str: ...

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray: ...


def item_texts(items: pd.DataFrame) -> list[str]:
    """The encoder input of every row of a canonical items table.

    Args:
        items: Needs ``title``; ``year``, ``genres``, ``tags``, ``overview`` are
            used when present.

    Returns:
        One text per row, in row order (see :func:`shared.model.text.item_text`).
    """
    if "title" not in items.columns:
        raise DataError(
            f"the items table needs a 'title' column, it has {list(items.columns)}; pass the "
            "canonical items table of training.data.dataset.Dataset"
        )
    n = len(items)

    def column(name: str) -> Sequence[object]:
        return items[name].tolist() if name in items.columns else [None] * n

    return [
        item_text(title, year, genres, tags, overview)
        for title, year, genres, tags, overview in zip(
            column("title"),
            column("year"),
            column("genres"),
            column("tags"),
            column("overview"),
            strict=True,
        )
    ]


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """sha256 digests of texts as a ``|S32`` array [n]."""
    return np.array([hashlib.sha256(t.encode("utf-8")).digest() for t in texts], dtype=KEY_DTYPE)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class EmbeddingCache:
    """Append-only store of text-hash -> vector for one model.

    Args:
        cache_dir: Parent folder; files go to ``cache_dir/<model_id>/``.
        model_id: The encoder's :attr:`model_id`.
    """

    def __init__(self, cache_dir: Path, model_id: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id) or "model"
        self.folder = Path(cache_dir) / safe
        self.keys = np.zeros(0, dtype=KEY_DTYPE)
        self.vectors: np.ndarray | None = None
        self._load()

    def _load(self) -> None:
        keys_path, vec_path = self.folder / KEYS_FILE, self.folder / VECTORS_FILE
        if not keys_path.is_file() or not vec_path.is_file():
            return
        try:
            keys = np.load(keys_path, allow_pickle=False)
            vectors = np.load(vec_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable embedding cache in %s: %s", self.folder, exc)
            return
        if keys.dtype != KEY_DTYPE or vectors.ndim != 2 or vectors.dtype != np.float32:
            log.warning("ignoring embedding cache in %s with unexpected dtypes", self.folder)
            return
        n = min(len(keys), len(vectors))
        self.keys = keys[:n]
        self.vectors = np.ascontiguousarray(vectors[:n])

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self) -> dict[bytes, int]:
        """Map from key to row of :attr:`vectors` (later rows win)."""
        return {bytes(k): i for i, k in enumerate(self.keys.tolist())}

    def append(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add rows and persist both files atomically (vectors first, then keys)."""
        if len(keys) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        if self.vectors is not None and self.vectors.shape[1] == vectors.shape[1]:
            all_vectors = np.concatenate([self.vectors, vectors])
            all_keys = np.concatenate([self.keys, keys.astype(KEY_DTYPE)])
        else:
            if self.vectors is not None:
                log.warning("embedding width changed; starting a new cache in %s", self.folder)
            all_vectors, all_keys = vectors, keys.astype(KEY_DTYPE)
        self.folder.mkdir(parents=True, exist_ok=True)
        _save_atomic(self.folder / VECTORS_FILE, all_vectors)
        _save_atomic(self.folder / KEYS_FILE, all_keys)
        self.keys, self.vectors = all_keys, all_vectors


def embed_items(
    items: pd.DataFrame,
    encoder: Encoder,
    cache_dir: Path | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = True,
    save_every_s: float = 120.0,
) -> np.ndarray:
    """Embed every item's text, reusing cached vectors for unchanged texts.

    Args:
        items: Canonical items table (``item_id``, ``title``, ``year``,
            ``genres``, ``tags``, ``overview``), n rows.
        encoder: A :class:`shared.model.text.TextEncoder` (or anything with
            ``model_id`` and ``encode``).
        cache_dir: Cache parent folder; None disables caching.
        chunk_size: Texts handed to the encoder per call (progress granularity).
        progress: Show a tqdm bar on stderr.
        save_every_s: Seconds between cache writes while embedding (each write rewrites the
            cache files, so not after every chunk): a run killed after hours of BERT on a
            large catalogue loses at most this much work.

    Returns:
        float32 [n, dim], row i embeds ``items.iloc[i]``; rows are L2-normalised.
    """
    texts = item_texts(items)
    keys = text_keys(texts)
    cache = EmbeddingCache(cache_dir, encoder.model_id) if cache_dir is not None else None
    known = cache.lookup() if cache is not None else {}

    todo: dict[bytes, str] = {}
    for key, text in zip(keys.tolist(), texts, strict=True):
        if key not in known and key not in todo:
            todo[key] = text
    new_keys = np.array(list(todo), dtype=KEY_DTYPE)
    pending = list(todo.values())
    parts: list[np.ndarray] = []
    start = time.perf_counter()
    saved = 0  # rows of ``parts`` already in the cache
    last_save = start

    def save() -> None:
        nonlocal saved, last_save
        done = sum(len(p) for p in parts)
        if cache is not None and done > saved:
            cache.append(new_keys[saved:done], np.concatenate(parts)[saved:])
            saved, last_save = done, time.perf_counter()

    with tqdm(
        total=len(pending),
        desc="embedding items",
        unit="item",
        file=sys.stderr,
        disable=not progress or not pending,
    ) as bar:
        try:
            for lo in range(0, len(pending), chunk_size):
                chunk = encoder.encode(pending[lo : lo + chunk_size])
                parts.append(np.asarray(chunk, dtype=np.float32))
                bar.update(len(chunk))
                if time.perf_counter() - last_save > save_every_s:
                    save()  # a run stopped later keeps what it embedded (a kill skips finally)
        finally:
            save()
    elapsed = time.perf_counter() - start
    if pending:
        log.info(
            "embedded %d new item texts in %.1f s (%.1f items/s); %d from cache",
            len(pending),
            elapsed,
            len(pending) / max(elapsed, 1e-9),
            len(texts) - len(pending),
        )

    if not texts:
        return np.asarray(encoder.encode([]), dtype=np.float32)
    if cache is not None and cache.vectors is not None:
        rows, source = cache.lookup(), cache.vectors
    else:
        rows = {k: i for i, k in enumerate(new_keys.tolist())}
        source = np.concatenate(parts)
    index = np.array([rows[k] for k in keys.tolist()], dtype=np.int64)
    return np.ascontiguousarray(source[index], dtype=np.float32)
