"""Fixtures for the evaluation tests: a small synthetic dataset with structure, and the real
bundled ml-latest-small (read with ``training.data.load_dataset``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import load_dataset
from training.data.dataset import Dataset
from training.evaluation.base import EvalData
from training.splits import make_split

GENRES = ("Action", "Comedy", "Drama", "Horror")


def synthetic_dataset(n_users: int = 60, n_items: int = 80, seed: int = 0) -> Dataset:
    """Users in 4 taste clusters; cluster c mostly rates the items of genre c (every 4th item).

    Returns:
        A canonical :class:`Dataset` with about 25 ratings per user, ratings 1..5 (cluster
        items rated higher), timestamps with ties.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        c = u % 4
        own = np.arange(c, n_items, 4)
        other = np.setdiff1d(np.arange(n_items), own)
        picks = np.concatenate(
            [rng.choice(own, 18, replace=False), rng.choice(other, 7, replace=False)]
        )
        for i in picks:
            rating = float(rng.integers(4, 6) if i % 4 == c else rng.integers(1, 4))
            rows.append((u + 1, int(i) + 100, rating, int(rng.integers(0, 50)) * 1000))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    inter = inter.astype(
        {"user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"}
    )
    items = pd.DataFrame(
        {
            "item_id": np.arange(n_items, dtype=np.int64) + 100,
            "title": [f"Item {i}" for i in range(n_items)],
            "year": pd.array([2000] * n_items, dtype="Int64"),
            "genres": [[GENRES[i % 4]] for i in range(n_items)],
            "tags": [[] for _ in range(n_items)],
            "overview": [None] * n_items,
        }
    )
    users = pd.DataFrame({"user_id": np.arange(1, n_users + 1, dtype=np.int64)})
    return Dataset(
        name="synthetic",
        interactions=inter,
        items=items,
        users=users,
        source_sha256="0" * 64,
        source_path="memory",
    )


@pytest.fixture
def synth_ds() -> Dataset:
    """The synthetic dataset."""
    return synthetic_dataset()


@pytest.fixture
def synth_data(synth_ds: Dataset) -> EvalData:
    """Synthetic random split (ratings >= 3, 5-core) indexed for evaluation."""
    return EvalData.from_split(synth_ds, make_split(synth_ds, "random", k_core=5))


@pytest.fixture(scope="session")
def real_ds(bundled_zip: Path) -> Dataset:
    """The bundled ml-latest-small."""
    return load_dataset(bundled_zip)


@pytest.fixture(scope="session")
def real_random(real_ds: Dataset) -> EvalData:
    """ml-latest-small, random 80/10/10 split, ratings >= 3, 10-core, seed 42."""
    return EvalData.from_split(real_ds, make_split(real_ds, "random", seed=42))
