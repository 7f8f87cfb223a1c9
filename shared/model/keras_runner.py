"""One way to load and run an exported Keras model at serving time: :class:`KerasRunner`.

Both towers of the two-tower model and the ranker are served through it. A runner loads
a ``.keras`` file with ``safe_mode=True`` (the custom layers come from
:mod:`shared.model.layers`) and offers three forward passes over the same weights:

* ``numpy`` (default when every layer is supported): the plain-numpy interpreter
  :class:`~shared.model.numpy_forward.NumpyForward`, no TensorFlow call per request, run
  with single-threaded BLAS (OpenBLAS's threaded sgemm stalls when TensorFlow's thread
  pools share the process; figures: ``docs/scaling.md#ranking``);
* ``tf_function``: a ``tf.function`` with a fixed ``input_signature`` (batch dimension
  ``None``, so a request never retraces), traced once at load;
* ``eager``: ``model(inputs, training=False)``.

TensorFlow and Keras are imported when a runner is built, not when this module is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import BundleError, ConfigError, ValidationError
from shared.model.numpy_forward import NumpyForward

BACKENDS = ("numpy", "tf_function", "eager")


class KerasRunner:
    """A saved Keras model, loaded once and run with checked inputs.

    Args:
        model_path: The ``.keras`` file.
        backend: Default forward pass (None: ``numpy`` when supported, else ``tf_function``).

    Raises:
        BundleError: The file is missing or not loadable, or ``numpy`` was asked for and
            the model has a layer the numpy interpreter does not know.
        ConfigError: Unknown backend.
    """

    #: What the model is, for error messages.
    kind = "model"

    def __init__(self, model_path: str | Path, backend: str | None = None) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        path = Path(model_path)
        if not path.is_file():
            raise BundleError(
                f"{self.kind} {path} does not exist; train and export the bundle with "
                "`hybridrec train` or point the service at the right bundle"
            )
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import keras
        import tensorflow as tf

        import shared.model.layers  # noqa: F401  (registers the custom layers)

        try:
            self.model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # keras raises many types for a bad file
            raise BundleError(f"cannot load {self.kind} {path}: {exc}") from exc
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
        try:
            self._numpy: NumpyForward | None = NumpyForward(self.model)
        except BundleError:
            if backend == "numpy":
                raise
            self._numpy = None
        self.backend = backend or ("numpy" if self._numpy is not None else "tf_function")
        self._blas = _blas_controller()

    @property
    def input_names(self) -> list[str]:
        """Names of the inputs the model takes."""
        return list(self.specs)

    def __call__(
        self, inputs: Mapping[str, np.ndarray], backend: str | None = None
    ) -> np.ndarray:
        """Run the model on a batch.

        Args:
            inputs: Arrays keyed by input name (extra keys are ignored), batch first.
            backend: ``numpy``, ``tf_function`` or ``eager`` (None: :attr:`backend`).

        Returns:
            [B, output_dim] float32.

        Raises:
            ValidationError: An input is missing or has the wrong shape.
        """
        feed = self._feed(inputs)
        if not feed:
            return np.zeros((0, self.output_dim), dtype=np.float32)
        which = backend or self.backend
        if which == "numpy" and self._numpy is not None:
            with self.one_blas_thread():
                return self._numpy(feed)
        if which == "eager":
            return np.asarray(self.model(feed, training=False), dtype=np.float32)
        if which in ("tf_function", "numpy"):
            return self._tf_call(feed)
        raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {which!r}")

    def one_blas_thread(self) -> contextlib.AbstractContextManager[Any]:
        """Single-threaded BLAS for numpy work in a process that also runs TensorFlow."""
        if self._blas is None:
            return contextlib.nullcontext()
        return self._blas.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]

    def _zeros(self, batch: int) -> dict[str, np.ndarray]:
        return {
            name: np.zeros((batch, *spec.shape[1:]), dtype=spec.dtype.as_numpy_dtype)
            for name, spec in self.specs.items()
        }

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


def _blas_controller() -> Any:
    """A ``threadpoolctl.ThreadpoolController``, or None where it is not installed."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return ThreadpoolController()
