"""Training at scale: EASE over the popular head, lazy Adam, bounded epochs and lists, progress."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras

from shared.contracts.errors import ConfigError
from shared.model.candidates import top_n
from shared.model.features import FeatureEncoder
from tests.training.models.test_two_stage import _data, _model
from training.evaluation.baselines import EASE
from training.models.lazy_adam import LazyAdam
from training.models.progress import FitProgress
from training.models.ranking_sources import SparseEASERecommender, head_items
from training.models.towers import TwoTowerConfig
from training.models.two_tower import make_dataset
from training.models.two_tower_examples import build_training_examples


def _skewed(n_users: int = 80, n_items: int = 40, seed: int = 3) -> Any:
    """Interactions whose item popularity falls with the item index (Zipf-like)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1)
    x = (rng.random((n_users, n_items)) < 4 * p / p.sum()).astype(np.float32)
    x[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0

    users, items = np.nonzero(x)

    class Data:
        train = sp.csr_matrix(x)
        # unweighted pairs, as EvalData gives them (no ``weight`` column: binary EASE)
        train_interactions = pd.DataFrame({"user_idx": users, "item_idx": items})

    Data.n_items = n_items  # type: ignore[attr-defined]
    Data.n_users = n_users  # type: ignore[attr-defined]
    return Data


def test_head_items_are_the_most_popular_in_item_order() -> None:
    train = sp.csr_matrix(np.array([[1, 0, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1]], np.float32))
    assert head_items(train, 2).tolist() == [0, 3]  # counts 2, 0, 2, 3: ties -> lower index
    assert head_items(train, None).tolist() == [0, 1, 2, 3]
    assert head_items(train, 9).tolist() == [0, 1, 2, 3]


def test_ease_over_the_head_equals_ease_on_the_head_and_leaves_the_tail_out() -> None:
    data = _skewed()
    head = head_items(data.train, 15)
    rec = SparseEASERecommender(lam=5.0, k=6, max_items=15)
    rec.fit(data)
    tail = np.setdiff1d(np.arange(data.n_items), head)
    assert (rec.neighbors[tail] == -1).all() and (rec.weights[tail] == 0).all()
    listed = rec.neighbors[rec.neighbors >= 0]
    assert np.isin(listed, head).all()  # the tail is never a neighbour
    # the head's table is exactly EASE solved on the head columns alone
    x = data.train[:, head]
    b = EASE.weights((x.T @ x).toarray().astype(np.float64), 5.0)
    idx, val = top_n(b, 6)
    keep = np.isfinite(val) & (val > 0)
    np.testing.assert_array_equal(rec.neighbors[head], np.where(keep, head[idx], -1))
    np.testing.assert_allclose(rec.weights[head], np.where(keep, val, 0), rtol=1e-6)
    # tail items are never scored; with room for every item nothing changes
    assert (rec.score(np.arange(5))[:, tail] == 0).all()
    full, roomy = SparseEASERecommender(5.0, 6), SparseEASERecommender(5.0, 6, max_items=99)
    full.fit(data)
    roomy.fit(data)
    np.testing.assert_array_equal(full.neighbors, roomy.neighbors)
    np.testing.assert_array_equal(full.weights, roomy.weights)


def _embedding_model(optimizer: Any) -> tuple[keras.Model, Any]:
    keras.utils.set_random_seed(0)
    ids = keras.Input(shape=(3,), dtype="int32")
    emb = keras.layers.Embedding(10, 4, name="table")(ids)
    out = keras.layers.Dense(1, name="dense")(keras.layers.Flatten()(emb))
    model = keras.Model(ids, out)
    model.compile(optimizer=optimizer, loss="mse")
    return model, model.get_layer("table")


def test_lazy_adam_updates_only_the_batch_rows_and_matches_adam_on_them() -> None:
    batch1 = np.array([[1, 2, 2], [2, 5, 1]], np.int32)  # row 2 three times: gradients add up
    batch2 = np.array([[7, 7, 8], [8, 7, 8]], np.int32)
    y = np.array([[1.0], [-1.0]], np.float32)
    lazy, lazy_table = _embedding_model(LazyAdam(0.1))
    dense, dense_table = _embedding_model(keras.optimizers.Adam(0.1))
    start = lazy_table.get_weights()[0].copy()
    np.testing.assert_array_equal(start, dense_table.get_weights()[0])
    lazy.train_on_batch(batch1, y)
    dense.train_on_batch(batch1, y)
    after_lazy, after_dense = lazy_table.get_weights()[0], dense_table.get_weights()[0]
    used = [1, 2, 5]
    # first step from zero moments: the same update on the rows the batch used ...
    np.testing.assert_allclose(after_lazy[used], after_dense[used], rtol=1e-5, atol=1e-7)
    assert not np.allclose(after_lazy[used], start[used])
    unused = [0, 3, 4, 6, 7, 8, 9]
    np.testing.assert_array_equal(after_lazy[unused], start[unused])  # ... and nothing else
    np.testing.assert_allclose(lazy.get_layer("dense").get_weights()[0],
                               dense.get_layer("dense").get_weights()[0], rtol=1e-5)
    # second step on other rows: lazy leaves rows 1, 2, 5 alone, dense Adam's momentum moves them
    lazy.train_on_batch(batch2, y)
    dense.train_on_batch(batch2, y)
    np.testing.assert_array_equal(lazy_table.get_weights()[0][used], after_lazy[used])
    assert not np.allclose(dense_table.get_weights()[0][used], after_dense[used])


def test_auto_optimizer_is_lazy_only_for_large_id_tables() -> None:
    auto = TwoTowerConfig()
    assert auto.resolve_optimizer(610, 9_742) == "adam"  # ml-latest-small: 20k rows
    assert auto.resolve_optimizer(6_502, 62_423) == "lazy_adam"  # synth 1M: 131k rows
    assert TwoTowerConfig(optimizer="adam").resolve_optimizer(10**6, 10**6) == "adam"
    with pytest.raises(ConfigError, match="optimizer"):
        TwoTowerConfig(optimizer="sgd")


def _examples(n: int = 1000) -> Any:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, n), rng.integers(0, 40, n)
    return build_training_examples(users, items, rng.integers(0, 10**6, n), 40)


def _encoder() -> FeatureEncoder:
    items = pd.DataFrame({"item_id": np.arange(1, 41), "title": "t", "year": 2000,
                          "genres": [["A"]] * 40, "tags": [[]] * 40, "overview": None})
    return FeatureEncoder.fit(np.arange(1, 51), items, pd.DataFrame({"user_id": np.arange(1, 51)}),
                              history_length=5)


def test_an_epoch_is_a_fresh_sample_of_max_examples_per_epoch() -> None:
    cfg = TwoTowerConfig(history_length=5, batch_size=64, max_examples_per_epoch=300)
    content = np.ones((40, 8), np.float32)
    dataset = make_dataset(_examples(), _encoder(), content, cfg)
    assert int(dataset.cardinality().numpy()) == 5  # ceil(300 / 64)
    epochs = [np.concatenate([b["item_idx"].numpy() for b in dataset]) for _ in range(2)]
    assert [len(e) for e in epochs] == [300, 300]
    assert not np.array_equal(epochs[0], epochs[1])
    everything = make_dataset(_examples(), _encoder(), content, replace(cfg,
                              max_examples_per_epoch=None))
    assert int(everything.cardinality().numpy()) == 16  # ceil(1000 / 64)


def test_fit_progress_shows_every_step_of_every_epoch_with_an_eta(
        capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = _embedding_model(keras.optimizers.Adam(0.1))
    x = np.zeros((12, 3), np.int32)
    y = np.zeros((12, 1), np.float32)

    class Val(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is not None:
                logs["val_recall@10"] = 0.5 + epoch / 10

    model.fit(x, y, batch_size=4, epochs=2, verbose=0,
              callbacks=[Val(), FitProgress("two-tower", 2, 3, every=2)])
    err = capsys.readouterr().err
    assert re.search(r"two-tower: 100%\S* +6/6 \[", err)  # 2 epochs x 3 steps, one bar
    assert re.search(r"6/6 \[\d\d:\d\d<00:00", err)  # elapsed<remaining: the ETA
    assert "two-tower: epoch 1 val_recall@10 0.5" in err
    assert "two-tower: epoch 2 val_recall@10 0.6" in err


def test_ranker_lists_come_from_a_seeded_sample_of_users() -> None:
    data, content = _data()
    model = _model(content)
    model.config = replace(model.config, max_train_users=10, max_valid_users=7)
    model.fit(data)
    assert model.hyperparameters["train_lists"] == 10
    assert model.hyperparameters["valid_lists"] == 7
    again = _model(content)
    again.config = replace(again.config, max_train_users=10, max_valid_users=7)
    again.fit(data)
    users = np.arange(len(data.user_ids))
    np.testing.assert_array_equal(model.score(users), again.score(users))
