"""Serving-time runners for the two-tower model's saved towers.

:class:`QueryTowerRunner` and :class:`CandidateTowerRunner` load a tower saved
as ``.keras`` (``safe_mode=True``; the custom layers come from
:mod:`shared.model.layers`) and run it with :class:`~shared.model.numpy_forward.NumpyForward`
(plain numpy, no TensorFlow call per request), falling back to a ``tf.function``
with a fixed ``input_signature`` (batch dimension ``None``, so a request never
retraces) for a layer the numpy interpreter does not know. TensorFlow and Keras are
imported when a runner is built, not when this module is imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import BundleError, ValidationError
from shared.model.features import FeatureEncoder
from shared.model.numpy_forward import NumpyForward


class _TowerRunner:
    """Load a saved tower and run it through a fixed-signature ``tf.function``."""

    kind = "tower"

    def __init__(self, model_path: str | Path) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise BundleError(
                f"{self.kind} model {path} does not exist; train and export the bundle with "
                "`hybridrec train` or point the service at the right bundle"
            )
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras
        import tensorflow as tf

        import shared.model.layers  # noqa: F401  (registers the custom layers)

        try:
            self.model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:
            raise BundleError(f"cannot load {self.kind} model {path}: {exc}") from exc
        self.path = path
        self._tf = tf
        self.specs: dict[str, Any] = {}
        for tensor in self.model.inputs:
            name = tensor.name.split(":")[0]
            self.specs[name] = tf.TensorSpec(
                shape=(None, *tuple(tensor.shape)[1:]), dtype=tf.as_dtype(tensor.dtype), name=name
            )
        self.output_dim = int(self.model.outputs[0].shape[-1])
        model = self.model

        def forward(inputs: dict[str, Any]) -> Any:
            return model(inputs, training=False)

        self._forward = tf.function(forward, input_signature=[self.specs], autograph=False)
        self._tf_call(self._feed(self._zeros(1)))  # trace once now, not on the first request
        try:  # numpy forward: no TensorFlow call per request (fallback: the tf.function)
            self._numpy: NumpyForward | None = NumpyForward(self.model)
        except BundleError:
            self._numpy = None

    @property
    def backend(self) -> str:
        """``numpy`` when the plain-numpy forward supports every layer, else ``tf_function``."""
        return "numpy" if self._numpy is not None else "tf_function"

    @property
    def input_names(self) -> list[str]:
        """Names of the inputs the tower takes."""
        return list(self.specs)

    def _zeros(self, batch: int) -> dict[str, np.ndarray]:
        return {
            name: np.zeros((batch, *spec.shape[1:]), dtype=spec.dtype.as_numpy_dtype)
            for name, spec in self.specs.items()
        }

    def __call__(
        self, inputs: Mapping[str, np.ndarray], backend: str | None = None
    ) -> np.ndarray:
        """Run the tower.

        Args:
            inputs: Arrays keyed by input name (extra keys are ignored), batch first.
            backend: ``numpy`` or ``tf_function`` (None: :attr:`backend`).

        Returns:
            [B, output_dim] float32 L2-normalised vectors.

        Raises:
            ValidationError: An input is missing or has the wrong shape.
        """
        feed = self._feed(inputs)
        if not feed:
            return np.zeros((0, self.output_dim), dtype=np.float32)
        if (backend or self.backend) == "numpy" and self._numpy is not None:
            return self._numpy(feed)
        return self._tf_call(feed)

    def _tf_call(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {name: self._tf.constant(arr) for name, arr in feed.items()}
        return np.asarray(self._forward(tensors), dtype=np.float32)

    def _feed(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Checked arrays by input name; empty when the batch is empty."""
        missing = [n for n in self.specs if n not in inputs]
        if missing:
            raise ValidationError(
                f"{self.kind} needs inputs {self.input_names}; missing {missing}"
            )
        feed: dict[str, np.ndarray] = {}
        batch = None
        for name, spec in self.specs.items():
            arr = np.asarray(inputs[name], dtype=spec.dtype.as_numpy_dtype)
            if arr.shape[1:] != tuple(spec.shape[1:]) or (batch is not None and len(arr) != batch):
                raise ValidationError(
                    f"{self.kind} input {name!r} must have shape (B, "
                    f"{', '.join(str(d) for d in spec.shape[1:])}) with the same B as the "
                    f"other inputs, got {arr.shape}"
                )
            batch = len(arr)
            feed[name] = arr
        return feed if batch else {}


class QueryTowerRunner(_TowerRunner):
    """The query tower: user id + recent items + features -> [B, 64] user vectors."""

    kind = "query tower"

    def encode(
        self,
        encoder: FeatureEncoder,
        user_ids: Sequence[int | None] | np.ndarray | None = None,
        histories: Sequence[Sequence[int] | np.ndarray] | None = None,
        user_features: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> np.ndarray:
        """User vectors of raw requests (see :meth:`FeatureEncoder.encode_queries`).

        Returns:
            [B, output_dim] float32.
        """
        return self(encoder.encode_queries(user_ids, histories, user_features))


class CandidateTowerRunner(_TowerRunner):
    """The candidate tower: item id + content + genres + year -> [N, 64] item vectors."""

    kind = "candidate tower"

    def encode_new_items(
        self,
        encoder: FeatureEncoder,
        content_vectors: np.ndarray,
        genres: Sequence[Any],
        years: Sequence[Any],
    ) -> np.ndarray:
        """Vectors of items added at serving time (content-only path, item id 0).

        Args:
            encoder: The bundle's feature encoder.
            content_vectors: [n, D] content (BERT) vectors of the new items.
            genres: [n] genre lists.
            years: [n] release years (None = unknown).

        Returns:
            [n, output_dim] float32 L2-normalised.
        """
        return self(encoder.encode_new_items(content_vectors, genres, years))
