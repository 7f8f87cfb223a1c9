"""Custom Keras 3 layers shared by the training pipeline and the services.

Every layer is registered under the package name ``hybridrec`` so that models
saved as ``.keras`` load with ``keras.saving.load_model(path, safe_mode=True)``
once this module has been imported (no ``Lambda`` layers, no pickled code).

Keras is imported here at module level, so only modules that build or load
Keras models import this one (lazily, inside functions, in the services).
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
from keras import ops

PACKAGE = "hybridrec"


@keras.saving.register_keras_serializable(package=PACKAGE)
class L2Normalize(keras.layers.Layer):
    """Scale vectors to unit L2 norm along ``axis``.

    Input: [..., d] float. Output: same shape; an all-zero vector stays zero.
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-12, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.epsilon = float(epsilon)

    def call(self, inputs: Any) -> Any:
        square_sum = ops.sum(ops.square(inputs), axis=self.axis, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(square_sum, self.epsilon))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of sequence embeddings over the positions whose id is not 0 (padding).

    Call with ``(embeddings, ids)``: embeddings [B, L, d] float, ids [B, L] int
    (0 = padding). Output [B, d]; a row with no valid position is all zeros.
    """

    def call(self, embeddings: Any, ids: Any) -> Any:
        mask = ops.cast(ops.not_equal(ids, 0), embeddings.dtype)  # [B, L]
        total = ops.sum(embeddings * ops.expand_dims(mask, -1), axis=1)  # [B, d]
        count = ops.sum(mask, axis=1, keepdims=True)  # [B, 1]
        return total / ops.maximum(count, 1.0)

    def compute_output_shape(self, embeddings_shape: Any, ids_shape: Any = None) -> Any:
        return (embeddings_shape[0], embeddings_shape[-1])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class IdDropout(keras.layers.Layer):
    """Replace integer ids by 0 (the unknown/new-id row) with probability ``rate`` in training.

    Trains the "no id" path of a tower (anonymous user, new item) on the same
    examples as the id path. At inference the ids pass through unchanged.

    Input: [...] int ids. Output: same shape and dtype.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"IdDropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids: Any, training: bool | None = None) -> Any:
        if not training or self.rate == 0.0:
            return ids
        keep = keras.random.uniform(ops.shape(ids), seed=self.seed_generator) >= self.rate
        return ops.where(keep, ids, ops.zeros_like(ids))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
