"""The candidate (item) tower's inputs: their names and the encoder's item side.

:class:`ItemInputs` is the part of :class:`shared.model.features.FeatureEncoder` that turns
catalogue items (by index) and new items (content vectors, genres, years, attributes) into
the arrays the item tower takes; the encoder's vocabularies and tables are built by
:class:`~shared.model.features.FeatureEncoder` itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.contracts.errors import ValidationError
from shared.model.feature_values import genre_list, is_missing, year_bucket

if TYPE_CHECKING:
    from shared.model.attributes import AttributeEncoder

# Input names of the item tower.
ITEM_INPUT = "item_id"
CONTENT_INPUT = "content"
GENRES_INPUT = "genres"
YEAR_INPUT = "year_bucket"


class ItemInputs:
    """Item-tower inputs of :class:`~shared.model.features.FeatureEncoder` (a mixin: the
    encoder holds the vocabularies and tables named below)."""

    year_min: int
    year_bucket_size: int
    n_year_buckets: int
    attribute_sources: dict[str, str]
    attributes: AttributeEncoder | None
    _genre_index: dict[str, int]
    _genre_table: np.ndarray
    _year_table: np.ndarray

    if TYPE_CHECKING:

        @property
        def n_items(self) -> int: ...

        @property
        def n_genres(self) -> int: ...

    def year_buckets(self, years: Sequence[Any] | np.ndarray) -> np.ndarray:
        """[B] int32 year bucket (0 = unknown; out-of-range years clip to the end buckets)."""
        size, n = self.year_bucket_size, self.n_year_buckets
        return np.asarray([year_bucket(y, self.year_min, size, n) for y in years], dtype=np.int32)

    def genre_multi_hot(self, genre_lists: Sequence[Any]) -> np.ndarray:
        """[B, G] float32 multi-hot of genre lists (genres outside the vocabulary are ignored)."""
        out = np.zeros((len(genre_lists), self.n_genres), dtype=np.float32)
        for k, gl in enumerate(genre_lists):
            cols = [self._genre_index[g] for g in genre_list(gl) if g in self._genre_index]
            out[k, cols] = 1.0
        return out

    def encode_items(
        self,
        content_vectors: np.ndarray,
        item_idx: Sequence[int] | np.ndarray | None = None,
        use_ids: bool | np.ndarray = True,
    ) -> dict[str, np.ndarray]:
        """Candidate-tower inputs for catalogue items.

        Args:
            content_vectors: [n, D] content (BERT) vectors of the items, in ``item_idx`` order.
            item_idx: [n] item indices; None = the whole catalogue (then n = n_items).
            use_ids: False (or a False entry of an [n] bool mask) feeds item id 0,
                the content-only path used for items without interactions.

        Returns:
            ``item_id`` [n] int32, ``content`` [n, D] float32, ``genres`` [n, G] float32,
            ``year_bucket`` [n] int32, and the item attributes' inputs.
        """
        idx = np.arange(self.n_items) if item_idx is None else np.asarray(item_idx, np.int64)
        content = np.asarray(content_vectors, dtype=np.float32)
        if content.ndim != 2 or len(content) != len(idx):
            raise ValidationError(
                f"content_vectors must be [{len(idx)}, D], got shape {content.shape}"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_items):
            raise ValidationError(f"item indices must be in [0, {self.n_items})")
        ids = (idx + 1).astype(np.int32)
        ids = np.where(np.broadcast_to(np.asarray(use_ids, bool), ids.shape), ids, 0)
        out = {
            ITEM_INPUT: ids.astype(np.int32),
            CONTENT_INPUT: content,
            GENRES_INPUT: self._genre_table[idx + 1],
            YEAR_INPUT: self._year_table[idx] if idx.size else np.zeros(0, np.int32),
        }
        if self.attributes is not None:
            out.update(self.attributes.item.rows(idx))
        return out

    def encode_new_items(
        self,
        content_vectors: np.ndarray,
        genres: Sequence[Any],
        years: Sequence[Any],
        attributes: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Candidate-tower inputs for items outside the catalogue (content only, item id 0).

        Args:
            content_vectors: [n, D] content vectors.
            genres: [n] genre lists.
            years: [n] release years (None = unknown).
            attributes: [n] ``{attribute: value}`` of each item (None = none known).

        Returns:
            Same keys as :meth:`encode_items`.
        """
        content = np.asarray(content_vectors, dtype=np.float32)
        if attributes is not None and self.attribute_sources:
            genres, years = self.genres_and_years(genres, years, attributes)
        if content.ndim != 2 or not len(content) == len(genres) == len(years):
            raise ValidationError(
                f"need matching lengths: content {content.shape}, {len(genres)} genre lists, "
                f"{len(years)} years"
            )
        out = {
            ITEM_INPUT: np.zeros(len(content), dtype=np.int32),
            CONTENT_INPUT: content,
            GENRES_INPUT: self.genre_multi_hot(genres),
            YEAR_INPUT: self.year_buckets(years),
        }
        if self.attributes is not None:
            recs = list(attributes) if attributes is not None else [None] * len(content)
            if len(recs) != len(content):
                raise ValidationError(f"need one attribute dict per item: {len(recs)} for "
                                      f"{len(content)} items")
            out.update(self.attributes.item.encode_records(recs))
        return out

    def genres_and_years(
        self, genres: Sequence[Any], years: Sequence[Any],
        attributes: Sequence[Mapping[str, Any] | None],
    ) -> tuple[list[Any], list[Any]]:
        """New items' genres and years, those missing taken from the attributes training read
        them from (:attr:`attribute_sources`; for the item text and the tower alike)."""
        g_src, y_src = self.attribute_sources.get("genres"), self.attribute_sources.get("year")
        out_g, out_y = list(genres), list(years)
        for k, rec in enumerate(list(attributes)[: len(out_g)]):
            if not rec:
                continue
            if g_src and not genre_list(out_g[k]) and rec.get(g_src) is not None:
                value = rec[g_src]
                out_g[k] = value if isinstance(value, list | tuple) else [value]
            if y_src and k < len(out_y) and is_missing(out_y[k]):
                try:
                    out_y[k] = None if rec.get(y_src) is None else int(float(rec[y_src]))
                except (TypeError, ValueError):
                    out_y[k] = None
        return out_g, out_y
