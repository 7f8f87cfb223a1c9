"""Serving-time runners for the two-tower model's saved towers.

:class:`QueryTowerRunner` and :class:`CandidateTowerRunner` are
:class:`~shared.model.keras_runner.KerasRunner` s (numpy forward, ``tf.function``
fallback) that also encode raw requests with the bundle's
:class:`~shared.model.features.FeatureEncoder`. Each returns [B, 64] float32
L2-normalised vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shared.model.features import FeatureEncoder
from shared.model.keras_runner import KerasRunner


class QueryTowerRunner(KerasRunner):
    """The query tower: user id + recent items + features -> [B, 64] user vectors."""

    kind = "query tower"

    def encode(
        self,
        encoder: FeatureEncoder,
        user_ids: Sequence[int | str | None] | np.ndarray | None = None,
        histories: Sequence[Sequence[int] | np.ndarray] | None = None,
        user_features: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> np.ndarray:
        """User vectors of raw requests (see :meth:`FeatureEncoder.encode_queries`).

        Returns:
            [B, output_dim] float32.
        """
        return self(encoder.encode_queries(user_ids, histories, user_features))


class CandidateTowerRunner(KerasRunner):
    """The candidate tower: item id + content + genres + year + attributes -> [N, 64]."""

    kind = "candidate tower"

    def encode_new_items(
        self,
        encoder: FeatureEncoder,
        content_vectors: np.ndarray,
        genres: Sequence[Any],
        years: Sequence[Any],
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> np.ndarray:
        """Vectors of items added at serving time (content-only path, item id 0).

        Args:
            encoder: The bundle's feature encoder.
            content_vectors: [n, D] content (BERT) vectors of the new items.
            genres: [n] genre lists.
            years: [n] release years (None = unknown).
            attributes: [n] attribute values by name (the bundle's attribute features).

        Returns:
            [n, output_dim] float32 L2-normalised.
        """
        return self(encoder.encode_new_items(content_vectors, genres, years, attributes))
