"""Custom Keras layers: maths, config and safe-mode save/load."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np

from shared.model.layers import IdDropout, L2Normalize, MaskedMeanPooling


def test_l2_normalize() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    out = np.asarray(L2Normalize()(x))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], atol=1e-6)


def test_masked_mean_pooling_ignores_padding() -> None:
    emb = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    ids = np.array([[0, 5, 7], [0, 0, 0]], dtype=np.int32)
    out = np.asarray(MaskedMeanPooling()(emb, ids))
    np.testing.assert_allclose(out[0], (emb[0, 1] + emb[0, 2]) / 2)
    np.testing.assert_allclose(out[1], [0.0, 0.0])


def test_id_dropout_only_in_training() -> None:
    ids = np.arange(1, 20001, dtype=np.int32)
    layer = IdDropout(0.3, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(ids, training=False)), ids)
    dropped = np.asarray(layer(ids, training=True))
    zero = dropped == 0
    assert 0.27 < zero.mean() < 0.33
    np.testing.assert_array_equal(dropped[~zero], ids[~zero])


def test_safe_mode_round_trip(tmp_path) -> None:
    ids = keras.Input(shape=(4,), dtype="int32", name="ids")
    emb = keras.layers.Embedding(10, 3, name="emb")(IdDropout(0.5, seed=3)(ids))
    out = L2Normalize(epsilon=1e-9)(MaskedMeanPooling()(emb, ids))
    model = keras.Model({"ids": ids}, out)
    x = {"ids": np.array([[1, 2, 0, 0], [3, 4, 5, 9]], dtype=np.int32)}
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    layer = next(la for la in loaded.layers if isinstance(la, IdDropout))
    assert layer.get_config()["rate"] == 0.5 and layer.get_config()["seed"] == 3
    norm = next(la for la in loaded.layers if isinstance(la, L2Normalize))
    assert norm.get_config()["epsilon"] == 1e-9
