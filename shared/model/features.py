"""Feature vocabularies and the numpy inputs of the two-tower model.

:class:`FeatureEncoder` holds every lookup the towers need – user ids, item ids
(in the bundle's item order), genres, year buckets and the optional user
features (gender, age, occupation) – and turns raw requests into the exact
arrays the Keras towers take. Training and the retrieval service both call it,
so the features are computed identically in both places. It saves to JSON
(no pickle). The query side is here; the item side is
:class:`shared.model.item_inputs.ItemInputs`, the raw values' canonical forms
:mod:`shared.model.feature_values`.

Index conventions (all tables reserve row 0):

* ``user_id`` input: ``user_idx + 1`` for a known user, 0 = unknown/anonymous.
* ``item_id`` / ``history`` inputs: ``item_idx + 1``, 0 = padding or new item.
* ``year_bucket``: ``(year - year_min) // bucket_size + 1`` clipped to the
  known range, 0 = unknown year.
* user features: vocabulary position + 1, 0 = unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import BundleError, ConfigError, ValidationError
from shared.model.attributes import AttributeEncoder
from shared.model.feature_values import (
    feature_value,
    genre_list,
    is_missing,
    user_feature_table,
    year_bucket,
)
from shared.model.item_inputs import ItemInputs

SCHEMA_VERSION = 1
DEFAULT_HISTORY_LENGTH = 50

# Input names of the query tower (the item tower's are in shared.model.item_inputs).
USER_INPUT = "user_id"
HISTORY_INPUT = "history"
PROFILE_INPUT = "genre_profile"


@dataclass
class FeatureEncoder(ItemInputs):
    """Vocabularies and encoders of the two-tower inputs.

    Attributes:
        user_ids: Ids of the known users (strings; training's integer ids are kept as
            their decimal text until the bundle export writes the dataset's own ids);
            position ``i`` -> table index ``i + 1``.
        item_ids: Ids of the catalogue in bundle order (strings, as ``user_ids``);
            ``item_idx`` -> ``item_idx + 1``. Lookups take any id and use its text, so
            ``296`` and ``"296"`` are the same item.
        genres: Genre vocabulary; multi-hot column ``j`` = ``genres[j]``.
        item_genres: Per item index, the genre columns it has.
        item_year_buckets: Per item index, its year bucket (0 = unknown).
        year_min: First year of bucket 1.
        year_bucket_size: Years per bucket.
        n_year_buckets: Number of real buckets (table size = n_year_buckets + 1).
        user_feature_vocabs: Per user feature present in the dataset, its values.
        user_feature_rows: Per known user, the encoded value of each feature in
            ``user_feature_vocabs`` order (0 = unknown); empty when no features.
        history_length: Number of recent items the query tower sees.
        attribute_sources: ``genres`` / ``year`` -> the item attribute they were read from
            (a dataset in the project's format: ``{"genres": "categories", "year": "year"}``);
            a new item without genres or year gets them from these attributes.
        attributes: Every other categorical and numeric item and user attribute
            (:class:`shared.model.attributes.AttributeEncoder`), or None; saved beside the
            JSON as ``attributes.json`` + ``attributes.npz``.
    """

    user_ids: list[str]
    item_ids: list[str]
    genres: list[str]
    item_genres: list[list[int]]
    item_year_buckets: list[int]
    year_min: int
    year_bucket_size: int
    n_year_buckets: int
    user_feature_vocabs: dict[str, list[str]] = field(default_factory=dict)
    user_feature_rows: list[list[int]] = field(default_factory=list)
    history_length: int = DEFAULT_HISTORY_LENGTH
    attribute_sources: dict[str, str] = field(default_factory=dict)
    attributes: AttributeEncoder | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.history_length < 1:
            raise ConfigError(f"history_length must be >= 1, got {self.history_length}")
        self.user_ids = [str(u) for u in self.user_ids]
        self.item_ids = [str(it) for it in self.item_ids]
        self._user_index = {u: i + 1 for i, u in enumerate(self.user_ids)}
        self._item_index = {it: i for i, it in enumerate(self.item_ids)}
        self._genre_index = {g: j for j, g in enumerate(self.genres)}
        self._feature_index = {
            name: {v: j + 1 for j, v in enumerate(vocab)}
            for name, vocab in self.user_feature_vocabs.items()
        }
        # [n_items + 1, G] multi-hot; row 0 (padding / new item) is all zeros.
        table = np.zeros((len(self.item_ids) + 1, len(self.genres)), dtype=np.float32)
        for i, cols in enumerate(self.item_genres):
            table[i + 1, cols] = 1.0
        self._genre_table = table
        self._year_table = np.asarray(self.item_year_buckets, dtype=np.int32)
        self._feature_rows = np.asarray(self.user_feature_rows, dtype=np.int32).reshape(
            len(self.user_feature_rows), len(self.user_feature_vocabs)
        )

    @classmethod
    def fit(
        cls,
        user_ids: Sequence[int | str] | np.ndarray,
        items: Any,
        users: Any | None = None,
        *,
        history_length: int = DEFAULT_HISTORY_LENGTH,
        year_bucket_size: int = 5,
        attributes: AttributeEncoder | None = None,
        attribute_sources: Mapping[str, str] | None = None,
    ) -> FeatureEncoder:
        """Build the vocabularies from the indexed training data.

        Args:
            user_ids: [n_users] raw user ids; position = ``user_idx``.
            items: Item table aligned to ``item_idx`` with ``item_id``, ``genres``
                (list[str]) and ``year`` (nullable int) columns.
            users: Optional user table aligned to ``user_idx`` with ``user_id`` and
                any of ``gender``, ``age``, ``occupation``.
            history_length: Recent items the query tower sees.
            year_bucket_size: Years per year bucket.
            attributes: The other attributes' encoder (fitted on the same training data).
            attribute_sources: See the class attribute.

        Returns:
            The encoder.
        """
        if year_bucket_size < 1:
            raise ConfigError(f"year_bucket_size must be >= 1, got {year_bucket_size}")
        n = len(items)
        genre_lists = [genre_list(g) for g in items["genres"]] if "genres" in items else [[]] * n
        genres = sorted({g for gl in genre_lists for g in gl})
        gindex = {g: j for j, g in enumerate(genres)}
        raw_years: list[Any] = list(items["year"]) if "year" in items else [None] * n
        years: list[int | None] = [None if is_missing(y) else int(y) for y in raw_years]
        known = [y for y in years if y is not None]
        year_min = (min(known) // year_bucket_size) * year_bucket_size if known else 1900
        n_buckets = (max(known) - year_min) // year_bucket_size + 1 if known else 1
        vocabs, rows = user_feature_table(users, len(user_ids))
        return cls(
            user_ids=[str(u) for u in user_ids],
            item_ids=[str(i) for i in items["item_id"]],
            genres=genres,
            item_genres=[sorted({gindex[g] for g in gl}) for gl in genre_lists],
            item_year_buckets=[
                year_bucket(y, year_min, year_bucket_size, n_buckets) for y in years
            ],
            year_min=int(year_min),
            year_bucket_size=int(year_bucket_size),
            n_year_buckets=int(n_buckets),
            user_feature_vocabs=vocabs,
            user_feature_rows=rows,
            history_length=int(history_length),
            attribute_sources=dict(attribute_sources or {}),
            attributes=None if attributes is None or attributes.empty else attributes,
        )

    @property
    def n_users(self) -> int:
        """Known users (the user table has ``n_users + 1`` rows)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Catalogue items (the item table has ``n_items + 1`` rows)."""
        return len(self.item_ids)

    @property
    def n_genres(self) -> int:
        """Width of the genre multi-hot and genre profile."""
        return len(self.genres)

    @property
    def user_feature_names(self) -> list[str]:
        """User feature inputs of the query tower (may be empty)."""
        return list(self.user_feature_vocabs)

    def feature_vocab_size(self, name: str) -> int:
        """Table size of user feature ``name`` (values + 1 for unknown)."""
        return len(self.user_feature_vocabs[name]) + 1

    def user_index(self, raw_user_ids: Sequence[int | str] | np.ndarray) -> np.ndarray:
        """[B] int32 user table index (``user_idx + 1``; 0 for unknown ids)."""
        return np.asarray([self._user_index.get(str(u), 0) for u in raw_user_ids], np.int32)

    def item_index(self, raw_item_ids: Sequence[int | str] | np.ndarray) -> np.ndarray:
        """[B] int64 ``item_idx`` of raw item ids (-1 for ids outside the catalogue)."""
        return np.asarray([self._item_index.get(str(i), -1) for i in raw_item_ids], np.int64)

    def with_ids(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> FeatureEncoder:
        """The same encoder naming its users and items by other ids, position for position
        (the bundle export's switch from training's integers to the dataset's own ids)."""
        if len(user_ids) != len(self.user_ids) or len(item_ids) != len(self.item_ids):
            raise ConfigError(
                f"with_ids needs {len(self.user_ids)} user and {len(self.item_ids)} item ids, "
                f"got {len(user_ids)} and {len(item_ids)}"
            )
        return replace(self, user_ids=[str(u) for u in user_ids],
                       item_ids=[str(i) for i in item_ids])


    def pad_histories(self, histories: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        """Fixed-length history table input.

        Args:
            histories: Per query, item indices oldest first (most recent last).

        Returns:
            [B, history_length] int32 of ``item_idx + 1``; the most recent item is in
            the last column, shorter histories are left-padded with 0.

        Raises:
            ValidationError: An item index is outside ``[0, n_items)``.
        """
        length = self.history_length
        out = np.zeros((len(histories), length), dtype=np.int32)
        for k, hist in enumerate(histories):
            h = np.asarray(hist, dtype=np.int64).reshape(-1)[-length:]
            if h.size and (h.min() < 0 or h.max() >= self.n_items):
                raise ValidationError(
                    f"history item indices must be in [0, {self.n_items}), got {h.min()}.."
                    f"{h.max()}; map raw item ids with item_index() and drop unknown ones"
                )
            if h.size:
                out[k, length - h.size :] = h + 1
        return out

    def genre_profile(self, padded_history: np.ndarray) -> np.ndarray:
        """Genre-preference profile: normalised genre counts over the history.

        Args:
            padded_history: [B, L] int table indices (0 = padding).

        Returns:
            [B, G] float32; each row sums to 1 (all zeros when no history item has a genre).
        """
        counts = self._genre_table[np.asarray(padded_history)].sum(axis=1)  # [B, G]
        totals = counts.sum(axis=1, keepdims=True)
        return (counts / np.maximum(totals, 1e-9)).astype(np.float32)

    def _feature_indices(
        self,
        user_table_index: np.ndarray,
        user_features: Sequence[Mapping[str, Any] | None] | None,
    ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        batch = len(user_table_index)
        for j, name in enumerate(self.user_feature_vocabs):
            col = np.zeros(batch, dtype=np.int32)
            known = user_table_index > 0
            if known.any() and len(self._feature_rows):
                col[known] = self._feature_rows[user_table_index[known] - 1, j]
            if user_features is not None:
                for k, feats in enumerate(user_features):
                    if feats and name in feats:
                        value = feature_value(feats[name])
                        col[k] = self._feature_index[name].get(value or "", 0)
            out[name] = col
        return out

    def query_arrays(
        self,
        user_table_index: np.ndarray,
        padded_history: np.ndarray,
        user_features: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Query-tower inputs from already-indexed arrays (the training fast path).

        Args:
            user_table_index: [B] int user table index (0 = anonymous).
            padded_history: [B, history_length] int table indices (see :meth:`pad_histories`).
            user_features: Optional per-query dicts overriding the stored features.

        Returns:
            ``user_id`` [B] int32, ``history`` [B, L] int32, ``genre_profile`` [B, G]
            float32, one [B] int32 array per user feature and the user attributes' inputs
            (a known user's stored rows, with the attributes ``user_features`` names
            replacing them).
        """
        uidx = np.asarray(user_table_index, dtype=np.int32).reshape(-1)
        hist = np.asarray(padded_history, dtype=np.int32)
        if hist.shape != (len(uidx), self.history_length):
            raise ValidationError(
                f"padded history must have shape ({len(uidx)}, {self.history_length}), "
                f"got {hist.shape}"
            )
        out = {USER_INPUT: uidx, HISTORY_INPUT: hist, PROFILE_INPUT: self.genre_profile(hist)}
        out.update(self._feature_indices(uidx, user_features))
        if self.attributes is not None:
            side = self.attributes.user
            stored = side.rows(uidx - 1, known=uidx > 0)
            out.update(side.overlay(stored, user_features) if user_features else stored)
        return out

    def encode_queries(
        self,
        user_ids: Sequence[int | str | None] | np.ndarray | None = None,
        histories: Sequence[Sequence[int] | np.ndarray] | None = None,
        user_features: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Query-tower inputs for a batch of requests.

        Args:
            user_ids: [B] raw user ids (None or unknown id = anonymous), or None for
                an all-anonymous batch.
            histories: Per query, recent item indices oldest first (most recent
                last); None = no history.
            user_features: Optional per-query dicts such as ``{"gender": "F",
                "age": 25}``; a known user's stored features are used otherwise.

        Returns:
            See :meth:`query_arrays`.
        """
        sizes = {len(x) for x in (user_ids, histories, user_features) if x is not None}
        if len(sizes) > 1:
            raise ValidationError(
                f"user_ids, histories and user_features must have the same length, got {sizes}"
            )
        batch = sizes.pop() if sizes else 0
        if user_ids is None:
            uidx = np.zeros(batch, dtype=np.int32)
        else:
            uidx = np.asarray(
                [0 if u is None else self._user_index.get(str(u), 0) for u in user_ids],
                dtype=np.int32,
            )
        hist = self.pad_histories(histories if histories is not None else [[]] * batch)
        return self.query_arrays(uidx, hist, user_features)


    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without :attr:`attributes`, saved in their own files)."""
        return {"schema_version": SCHEMA_VERSION,
                **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "attributes"}}

    def save(self, path: str | Path) -> None:
        """Write the encoder as JSON (and its attributes beside it, when it has some)."""
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")))
        if self.attributes is not None:
            self.attributes.save(Path(path).parent)

    @classmethod
    def load(cls, path: str | Path) -> FeatureEncoder:
        """Read an encoder written by :meth:`save`.

        Raises:
            BundleError: The file is missing, not JSON or of another schema version.
        """
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise BundleError(
                f"cannot read feature encoder {path}: {exc}; rebuild the bundle with "
                "`hybridrec train`"
            ) from exc
        version = raw.pop("schema_version", None) if isinstance(raw, dict) else None
        if version != SCHEMA_VERSION:
            raise BundleError(
                f"feature encoder {path} has schema version {version!r}, expected "
                f"{SCHEMA_VERSION}; rebuild the bundle with `hybridrec train`"
            )
        try:
            return cls(**raw, attributes=AttributeEncoder.load(Path(path).parent))
        except TypeError as exc:
            raise BundleError(f"feature encoder {path} is malformed: {exc}") from exc
