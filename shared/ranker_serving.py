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

from shared.candidates import CandidateSet
from shared.errors import BundleError, ConfigError, ValidationError
from shared.ranker_features import RankerFeatureTables, candidate_features

BACKENDS = ("numpy", "tf_function", "eager")
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
}


def _history_names(arg: Any) -> list[str]:
    """Layer names feeding one call argument of the functional config."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [arg["config"]["keras_history"][0]]
    if isinstance(arg, list | tuple):
        return [n for a in arg for n in _history_names(a)]
    return []


class NumpyForward:
    """Plain-numpy forward pass of a functional Keras ranker.

    Args:
        model: A loaded functional ``keras.Model`` built from supported layers.

    Raises:
        BundleError: The model holds a layer this interpreter does not know.
    """

    def __init__(self, model: Any) -> None:
        cfg = model.get_config()
        self.input_names: list[str] = []
        self.steps: list[tuple[str, str, list[str], dict[str, Any]]] = []
        for layer_cfg in cfg["layers"]:
            name, kind = layer_cfg["name"], layer_cfg["class_name"]
            layer = model.get_layer(name)
            if kind == "InputLayer":
                self.input_names.append(name)
                continue
            nodes = layer_cfg.get("inbound_nodes", [])
            if len(nodes) != 1:
                raise BundleError(f"layer {name!r} is called {len(nodes)} times; the numpy "
                                  "forward supports layers called once")
            srcs = _history_names(nodes[0].get("args", []))
            self.steps.append((name, kind, srcs, self._params(layer, kind)))
        outs = cfg["output_layers"]
        self.output = outs[0][0] if isinstance(outs[0], list) else outs[0]

    @staticmethod
    def _params(layer: Any, kind: str) -> dict[str, Any]:
        if kind == "Dense":
            act = layer.get_config().get("activation", "linear")
            if act not in _ACTIVATIONS:
                raise BundleError(f"Dense activation {act!r} is not supported by the numpy forward")
            w = layer.get_weights()
            return {"kernel": np.ascontiguousarray(w[0], np.float32),
                    "bias": np.asarray(w[1], np.float32) if len(w) > 1 else None,
                    "act": _ACTIVATIONS[act]}
        if kind == "Embedding":
            return {"table": np.ascontiguousarray(layer.get_weights()[0], np.float32)}
        if kind == "Normalization":
            import keras

            mean = np.asarray(layer.mean, np.float32).reshape(1, -1)
            std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float32).reshape(1, -1)),
                             np.float32(keras.config.epsilon()))
            return {"mean": mean, "inv_std": (1.0 / std).astype(np.float32)}
        if kind in ("Concatenate", "Multiply", "Dropout", "Add"):
            return {}
        raise BundleError(f"layer type {kind!r} is not supported by the numpy forward; use "
                          "backend='tf_function'")

    #: Rows per block: small enough that OpenBLAS stays single-threaded, whose
    #: multi-threaded path is ~10x slower for a 500-row request on a busy 2-core box.
    block_rows = 256

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """[b, E] float32 outputs for a dict of input arrays."""
        n = len(inputs[self.input_names[0]]) if self.input_names else 0
        if n > self.block_rows:
            return np.concatenate([
                self._forward({k: v[lo:lo + self.block_rows] for k, v in inputs.items()})
                for lo in range(0, n, self.block_rows)])
        return self._forward(inputs)

    def _forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        vals: dict[str, np.ndarray] = {n: inputs[n] for n in self.input_names}
        for name, kind, srcs, p in self.steps:
            x = [vals[s] for s in srcs]
            if kind == "Dense":
                y = x[0] @ p["kernel"]
                if p["bias"] is not None:
                    y += p["bias"]
                vals[name] = p["act"](y)
            elif kind == "Embedding":
                vals[name] = p["table"][np.asarray(x[0], dtype=np.int64)]
            elif kind == "Normalization":
                vals[name] = (x[0] - p["mean"]) * p["inv_std"]
            elif kind == "Concatenate":
                vals[name] = np.concatenate(x, axis=-1)
            elif kind == "Multiply":
                y = x[0]
                for z in x[1:]:
                    y = y * z
                vals[name] = y
            elif kind == "Add":
                vals[name] = np.sum(x, axis=0)
            else:  # Dropout: identity at inference
                vals[name] = x[0]
        return np.asarray(vals[self.output], dtype=np.float32)


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
            features: Ranker inputs (:func:`shared.ranker_features.candidate_features`).
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
        """:func:`shared.ranker_features.candidate_features` with single-threaded BLAS.

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
