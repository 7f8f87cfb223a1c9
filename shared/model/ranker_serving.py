"""Fast scoring of one user's candidates with the trained ranker (no ``model.predict``).

:class:`RankerScorer` loads ``ranker.keras`` with ``safe_mode=True`` and offers
three forward passes over the same weights:

* ``numpy`` (default): a plain-numpy interpreter of the functional graph read
  from the model's config (Dense, Embedding, Normalization, Concatenate,
  Multiply, Dropout = identity). No TensorFlow call per request; matches Keras
  to float32 rounding.
* ``tf_function``: ``tf.function`` with a fixed ``input_signature`` (batch dim
  None), so every batch size reuses one graph.
* ``eager``: ``model(inputs, training=False)``.

:func:`benchmark` times them against ``model.predict``. TensorFlow and Keras are
imported lazily, when a scorer is created.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import BundleError, ConfigError, ValidationError
from shared.model.candidates import CandidateSet
from shared.model.numpy_forward import NumpyForward
from shared.model.ranker_features import RankerFeatureTables, candidate_features

BACKENDS = ("numpy", "tf_function", "eager")
class RankerScorer:
    """Scores a batch of candidates of one user with the trained ranker.

    Args:
        model_path: The ranker ``.keras`` file (loaded with ``safe_mode=True``).
        tables: Feature tables for :meth:`rank` (optional for :meth:`score`).
        backend: Default forward pass: ``numpy``, ``tf_function`` or ``eager``.

    Raises:
        BundleError: The file is missing or not a loadable ranker.
        ConfigError: Unknown backend.
    """

    def __init__(self, model_path: str | Path, tables: RankerFeatureTables | None = None,
                 backend: str = "numpy") -> None:
        import keras
        import tensorflow as tf

        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        path = Path(model_path)
        if not path.is_file():
            raise BundleError(f"ranker model {path} not found; export it with "
                              "TwoStageRecommender.export")
        try:
            self.model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # keras raises many types for a bad file
            raise BundleError(f"cannot load ranker model {path}: {exc}") from exc
        self.tables = tables
        self.backend = backend
        self.input_names = [t.name for t in self.model.inputs]
        self.input_specs = {
            t.name: tf.TensorSpec(shape=(None, *t.shape[1:]), dtype=t.dtype, name=t.name)
            for t in self.model.inputs
        }
        model = self.model

        def forward(inputs: dict[str, Any]) -> Any:
            return model(inputs, training=False)

        self._tf_fn = tf.function(forward, input_signature=[self.input_specs], autograph=False)
        self._numpy = NumpyForward(self.model)
        self._blas = _blas_controller()

    def _one_blas_thread(self) -> contextlib.AbstractContextManager[Any]:
        """Single-threaded BLAS for one numpy forward (~13 µs to enter).

        With TensorFlow's thread pools in the same process, OpenBLAS's
        multi-threaded sgemm stalls: a 200-candidate request took 24 ms instead
        of 0.4 ms on a busy 2-core machine.
        """
        if self._blas is None:
            return contextlib.nullcontext()
        return self._blas.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]

    def _check(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in features]
        if missing:
            raise ValidationError(f"ranker inputs {missing} missing; got {sorted(features)}")
        return {n: np.asarray(features[n], dtype=self.input_specs[n].dtype.as_numpy_dtype)
                for n in self.input_names}

    def score(self, features: dict[str, np.ndarray], backend: str | None = None) -> np.ndarray:
        """[m] float32 scores (the logit, or the mean logit of an ensemble's members).

        Args:
            features: Ranker inputs (:func:`shared.model.ranker_features.candidate_features`).
            backend: Override of the default forward pass.
        """
        which = backend or self.backend
        feats = self._check(features)
        if which == "numpy":
            with self._one_blas_thread():
                out = self._numpy(feats)
        elif which == "tf_function":
            out = np.asarray(self._tf_fn(feats))
        elif which == "eager":
            out = np.asarray(self.model(feats, training=False))
        else:
            raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {which!r}")
        return out.reshape(len(out), -1).mean(axis=1)  # an ensemble's members are averaged

    def features(
        self, user_idx: int, history: np.ndarray, cands: CandidateSet
    ) -> dict[str, np.ndarray]:
        """:func:`shared.model.ranker_features.candidate_features` with single-threaded BLAS.

        Its similarity products hit the same OpenBLAS stall as the forward pass
        when TensorFlow shares the process; call this rather than the function.
        """
        if self.tables is None:
            raise ConfigError("RankerScorer.features needs feature tables; pass tables=...")
        with self._one_blas_thread():
            return candidate_features(self.tables, user_idx, history, cands)

    def rank(self, user_idx: int, history: np.ndarray,
             cands: CandidateSet) -> tuple[np.ndarray, np.ndarray]:
        """Candidates re-ordered by the ranker: (item_idx [m], logits [m]), best first."""
        if self.tables is None:
            raise ConfigError("RankerScorer.rank needs feature tables; pass tables=...")
        if not len(cands):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        logits = self.score(self.features(user_idx, history, cands))
        order = np.argsort(-logits, kind="stable")
        return cands.item_idx[order], logits[order]


def _blas_controller() -> Any:
    """A ``threadpoolctl.ThreadpoolController`` (scikit-learn's dependency), or None."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - installed with sentence-transformers
        return None
    return ThreadpoolController()


def benchmark(scorer: RankerScorer, features: dict[str, np.ndarray],
              runs: int = 200, warmup: int = 5) -> dict[str, float]:
    """Median milliseconds per call of ``model.predict``, eager, tf.function and numpy.

    Args:
        scorer: The scorer.
        features: One request's inputs.
        runs: Timed calls per method (``model.predict`` gets ``max(runs // 10, 5)``).
        warmup: Untimed calls first.

    Returns:
        ``{"predict_ms", "eager_ms", "tf_function_ms", "numpy_ms"}`` medians.
    """
    feats = scorer._check(features)
    methods: dict[str, tuple[Callable[[], Any], int]] = {
        "predict_ms": (lambda: scorer.model.predict(feats, verbose=0), max(runs // 10, 5)),
        "eager_ms": (lambda: scorer.score(feats, "eager"), runs),
        "tf_function_ms": (lambda: scorer.score(feats, "tf_function"), runs),
        "numpy_ms": (lambda: scorer.score(feats, "numpy"), runs),
    }
    out = {}
    for key, (fn, n) in methods.items():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000.0)
        out[key] = statistics.median(times)
    return out
