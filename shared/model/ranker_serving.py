"""Scoring one user's candidates with the trained ranker (no ``model.predict``).

:class:`RankerScorer` is a :class:`~shared.model.keras_runner.KerasRunner` over
``ranker.keras`` (numpy forward by default; ``tf_function`` and ``eager`` on request)
that also builds the ranker's features from the bundle's tables. :func:`benchmark` times
the forward passes against ``model.predict``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import ConfigError
from shared.model.candidates import CandidateSet
from shared.model.keras_runner import BACKENDS, KerasRunner
from shared.model.ranker_features import RankerFeatureTables, candidate_features

__all__ = ["BACKENDS", "RankerScorer", "benchmark"]
class RankerScorer(KerasRunner):
    """Scores a batch of candidates of one user with the trained ranker.

    Args:
        model_path: The ranker ``.keras`` file (loaded with ``safe_mode=True``).
        tables: Feature tables for :meth:`rank` (optional for :meth:`score`).
        backend: Default forward pass: ``numpy``, ``tf_function`` or ``eager``.

    Raises:
        BundleError: The file is missing or not a loadable ranker.
        ConfigError: Unknown backend.
    """

    kind = "ranker model"

    def __init__(self, model_path: str | Path, tables: RankerFeatureTables | None = None,
                 backend: str = "numpy") -> None:
        super().__init__(model_path, backend)
        self.tables = tables

    def score(self, features: dict[str, np.ndarray], backend: str | None = None) -> np.ndarray:
        """[m] float32 scores (the logit, or the mean logit of an ensemble's members).

        Args:
            features: Ranker inputs (:func:`shared.model.ranker_features.candidate_features`).
            backend: Override of the default forward pass.
        """
        out = self(features, backend)
        return out.reshape(len(out), -1).mean(axis=1)  # an ensemble's members are averaged

    def features(
        self, user_idx: int, history: np.ndarray, cands: CandidateSet,
        user_features: Mapping[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """:func:`shared.model.ranker_features.candidate_features` with single-threaded BLAS.

        Its similarity products hit the same OpenBLAS stall as the forward pass
        when TensorFlow shares the process; call this rather than the function.
        """
        if self.tables is None:
            raise ConfigError("RankerScorer.features needs feature tables; pass tables=...")
        with self.one_blas_thread():
            return candidate_features(self.tables, user_idx, history, cands, user_features)

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
    feats = scorer._feed(features)
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
