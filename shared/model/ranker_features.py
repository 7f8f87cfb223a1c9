"""Ranker features: one function used by training and by the ranking service.

:class:`RankerFeatureTables` holds the item- and user-side lookups (content
vectors, genre multi-hot, popularity, recency, year, user features) built once
from the training interactions; :func:`candidate_features` turns one user's
time-ordered history and merged :class:`~shared.model.candidates.CandidateSet` into the
ranker's input arrays. Training calls it per user, the service per request, so
both see exactly the same features.

Inputs of the ranker (``m`` candidates):

* ``user_idx`` [m] int32, ``item_idx`` [m] int32 – ID embeddings;
* ``content`` [m, D] float32 – the candidate's BERT vector;
* ``genres`` [m, G] float32 – multi-hot;
* ``user_features`` [m, U] float32 – one-hot gender/age/occupation (only when U > 0);
* ``dense`` [m, F] float32 – :meth:`RankerFeatureTables.dense_names`;
* the other item and user attributes (``item_cat_k``, ``item_num``, ``user_cat_k``,
  ``user_num``: :class:`shared.model.attributes.AttributeEncoder`), when the tables have them.

Numpy only; services import this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.contracts.errors import BundleError, ValidationError
from shared.model.attributes import AttributeEncoder, category
from shared.model.candidates import CandidateSet

TABLES_ARRAYS = "ranker_tables.npz"
TABLES_META = "ranker_tables.json"
ATTRIBUTES_STEM = "ranker_attributes"  # ranker_attributes.json + .npz (AttributeEncoder)
USER_FEATURE_COLUMNS = ("gender", "age", "occupation")
#: Share of the latest training interactions (by time) that counts as "recent".
RECENT_SHARE = 0.2
_ARRAYS = ("item_content", "item_genres", "item_count", "item_recent", "item_year",
           "user_features")


def _str_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value if isinstance(v, str) and v and v != "(no genres listed)"]
    return []


@dataclass
class RankerFeatureTables:
    """Lookups the features need, aligned to item_idx / user_idx.

    Attributes:
        source_names: Retrieval sources, in :class:`CandidateSet` column order.
        history_window: Recent history items the content similarities look at.
        item_content: [n_items, D] float32 L2-normalised content vectors (0 rows allowed).
        item_genres: [n_items, G] float32 multi-hot.
        item_count: [n_items] float32 training interactions per item.
        item_recent: [n_items] float32 interactions in the latest ``RECENT_SHARE`` of time.
        item_year: [n_items] float32 release year, NaN when unknown.
        user_features: [n_users, U] float32 one-hot user attributes (U may be 0).
        genre_names: The G genre names.
        user_feature_names: The U ``column=value`` names.
        mean_count: Mean of ``item_count`` (popularity is relative to it).
        year_mean: Mean known year.
        attributes: The other item and user attributes' encoder, or None.
    """

    source_names: tuple[str, ...]
    history_window: int
    item_content: np.ndarray
    item_genres: np.ndarray
    item_count: np.ndarray
    item_recent: np.ndarray
    item_year: np.ndarray
    user_features: np.ndarray
    genre_names: list[str] = field(default_factory=list)
    user_feature_names: list[str] = field(default_factory=list)
    mean_count: float = 1.0
    year_mean: float = 2000.0
    attributes: AttributeEncoder | None = None

    @property
    def n_items(self) -> int:
        """Catalogue size."""
        return len(self.item_count)

    @property
    def content_dim(self) -> int:
        """D, the content vector width."""
        return int(self.item_content.shape[1])

    def dense_names(self) -> list[str]:
        """Names of the ``dense`` feature columns, in order."""
        per_source = [f"{s}_{f}" for s in self.source_names
                      for f in ("score", "rel", "logrank", "found")]
        return [
            *per_source, "fused", "n_sources", "content_max", "content_mean", "content_last",
            "genre_affinity", "log_pop", "log_recent", "recent_share", "year_z",
            "year_missing", "year_gap", "log_history",
        ]

    def input_shapes(self) -> dict[str, int]:
        """Width of each ranker input (0 = scalar id input); ``user_features`` only when U > 0.
        The attribute inputs are not listed: ``attributes.{item,user}.input_specs()``."""
        shapes = {"user_idx": 0, "item_idx": 0, "content": self.content_dim,
                  "genres": int(self.item_genres.shape[1]), "dense": len(self.dense_names())}
        if self.user_features.shape[1]:
            shapes["user_features"] = int(self.user_features.shape[1])
        return shapes

    def save(self, out_dir: str | Path) -> dict[str, str]:
        """Write the arrays (``.npz``, no pickle) and the metadata (``.json``)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / TABLES_ARRAYS, **{k: getattr(self, k) for k in _ARRAYS})
        meta = {"source_names": list(self.source_names), "history_window": self.history_window,
                "genre_names": self.genre_names, "user_feature_names": self.user_feature_names,
                "mean_count": self.mean_count, "year_mean": self.year_mean}
        (out / TABLES_META).write_text(json.dumps(meta, indent=2))
        paths = {"arrays": str(out / TABLES_ARRAYS), "meta": str(out / TABLES_META)}
        if self.attributes is not None:
            saved = self.attributes.save(out, ATTRIBUTES_STEM)
            paths.update(attributes_meta=saved["meta"], attributes_arrays=saved["arrays"])
        return paths

    @classmethod
    def load(cls, in_dir: str | Path) -> RankerFeatureTables:
        """Read tables written by :meth:`save`.

        Raises:
            BundleError: Files missing or unreadable.
        """
        folder = Path(in_dir)
        try:
            meta = json.loads((folder / TABLES_META).read_text())
            with np.load(folder / TABLES_ARRAYS, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in _ARRAYS}
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(
                f"cannot read ranker feature tables from {folder}: {exc}; expected "
                f"{TABLES_ARRAYS} and {TABLES_META} written by RankerFeatureTables.save"
            ) from exc
        return cls(source_names=tuple(meta["source_names"]),
                   history_window=int(meta["history_window"]),
                   genre_names=list(meta["genre_names"]),
                   user_feature_names=list(meta["user_feature_names"]),
                   mean_count=float(meta["mean_count"]), year_mean=float(meta["year_mean"]),
                   attributes=AttributeEncoder.load(folder, ATTRIBUTES_STEM), **arrays)


def build_tables(
    items: pd.DataFrame,
    users: pd.DataFrame,
    interactions: pd.DataFrame,
    item_content: np.ndarray,
    source_names: tuple[str, ...] | list[str],
    *,
    history_window: int = 20,
    attributes: AttributeEncoder | None = None,
) -> RankerFeatureTables:
    """Build the lookups from the training interactions.

    Args:
        items: Canonical items aligned to item_idx (``genres``, ``year``).
        users: Users aligned to user_idx (optional ``gender``, ``age``, ``occupation``).
        interactions: Training rows with ``item_idx`` and ``timestamp``.
        item_content: [n_items, D] content vectors aligned to item_idx.
        source_names: Retrieval sources in candidate-column order.
        history_window: Recent history items for the content similarities.
        attributes: The other attributes' encoder, fitted on training data (or None).

    Returns:
        The :class:`RankerFeatureTables`.

    Raises:
        ValidationError: ``item_content`` rows do not match the items.
    """
    n_items = len(items)
    content = np.asarray(item_content, dtype=np.float32)
    if content.ndim != 2 or len(content) != n_items:
        raise ValidationError(
            f"item_content must be [n_items={n_items}, D], got {content.shape}; embed the "
            "items table aligned to item_idx"
        )
    genre_lists = [_str_list(g) for g in items.get("genres", pd.Series([[]] * n_items))]
    genre_names = sorted({g for gs in genre_lists for g in gs})
    gcol = {g: j for j, g in enumerate(genre_names)}
    genres = np.zeros((n_items, max(len(genre_names), 1)), dtype=np.float32)
    for i, gs in enumerate(genre_lists):
        genres[i, [gcol[g] for g in gs]] = 1.0
    item_idx = interactions["item_idx"].to_numpy(np.int64)
    ts = interactions["timestamp"].to_numpy(np.int64)
    count = np.bincount(item_idx, minlength=n_items).astype(np.float32)
    cutoff = np.quantile(ts, 1.0 - RECENT_SHARE) if len(ts) else 0
    recent = np.bincount(item_idx[ts >= cutoff], minlength=n_items).astype(np.float32)
    year = pd.to_numeric(items.get("year", pd.Series([None] * n_items)), errors="coerce")
    year_arr = year.to_numpy(dtype=np.float64, na_value=np.nan).astype(np.float32)
    known = year_arr[np.isfinite(year_arr)]
    ufeat, unames = _user_one_hot(users)
    return RankerFeatureTables(
        source_names=tuple(source_names), history_window=int(history_window),
        item_content=content, item_genres=genres, item_count=count, item_recent=recent,
        item_year=year_arr, user_features=ufeat, genre_names=genre_names,
        user_feature_names=unames, mean_count=float(max(count.mean(), 1e-6)),
        year_mean=float(known.mean()) if known.size else 2000.0,
        attributes=attributes,
    )


def _user_one_hot(users: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """[n_users, U] one-hot of the optional user attribute columns, and their names."""
    blocks, names = [], []
    for col in USER_FEATURE_COLUMNS:
        if col not in users.columns:
            continue
        values = users[col].astype("string").fillna("<missing>")
        vocab = sorted(values.unique().tolist())
        blocks.append((values.to_numpy()[:, None] == np.array(vocab)[None, :]).astype(np.float32))
        names += [f"{col}={v}" for v in vocab]
    if not blocks:
        return np.zeros((len(users), 0), dtype=np.float32), []
    return np.concatenate(blocks, axis=1), names


def candidate_features(
    tables: RankerFeatureTables,
    user_idx: int,
    history: np.ndarray,
    cands: CandidateSet,
    user_features: Mapping[str, Any] | None = None,
) -> dict[str, np.ndarray]:
    """Ranker inputs for one user's candidates.

    Args:
        tables: The lookups.
        user_idx: The user's position (ID embedding row); ``-1`` (or any index
            outside the tables) for a user unknown at training time: zero user
            features and ID row 0.
        history: [h] int item indices the user interacted with, oldest first.
        cands: The merged candidates (columns in ``tables.source_names`` order).
        user_features: Attributes the request sends (``{"country": "FR", "age": 34}``); each
            one named replaces the known user's stored value (an anonymous user has none).

    Returns:
        ``{"user_idx", "item_idx", "content", "genres", ["user_features"], "dense"}``
        arrays with ``m = len(cands)`` rows (see module docstring).

    Raises:
        ValidationError: The candidate columns do not match the tables' sources.
    """
    if tuple(cands.source_names) != tables.source_names:
        raise ValidationError(
            f"candidate sources {list(cands.source_names)} differ from the ranker's "
            f"{list(tables.source_names)}; merge candidates with the ranker's source_names"
        )
    items = np.asarray(cands.item_idx, dtype=np.int64)
    m = len(items)
    hist = np.asarray(history, dtype=np.int64).reshape(-1)
    recent = hist[-tables.history_window:] if tables.history_window > 0 else hist[:0]
    content = tables.item_content[items]
    if recent.size:
        sims = content @ tables.item_content[recent].T  # [m, n_recent]
        c_max, c_mean, c_last = sims.max(axis=1), sims.mean(axis=1), sims[:, -1]
    else:
        c_max = c_mean = c_last = np.zeros(m, dtype=np.float32)
    genres = tables.item_genres[items]
    profile = tables.item_genres[hist].sum(axis=0) if hist.size else genres[:0].sum(axis=0)
    pnorm = float(np.linalg.norm(profile))
    gnorm = np.linalg.norm(genres, axis=1)
    affinity = (genres @ profile) / np.maximum(gnorm * pnorm, 1e-6)
    scores, ranks = cands.scores, cands.ranks
    top = np.abs(scores).max(axis=0, initial=0.0)
    rel = scores / np.where(top > 0, top, 1.0)[None, :]
    found = (ranks < cands.missing_rank).astype(np.float32)
    per_source = np.stack(
        [scores, rel, np.log(ranks.astype(np.float32)), found], axis=2
    ).reshape(m, -1)  # source-major: s0 score, s0 rel, s0 logrank, s0 found, s1 ...
    count, rec = tables.item_count[items], tables.item_recent[items]
    year = tables.item_year[items]
    year_ok = np.isfinite(year)
    hist_years = tables.item_year[hist] if hist.size else np.zeros(0, np.float32)
    hist_years = hist_years[np.isfinite(hist_years)]
    user_year = float(hist_years.mean()) if hist_years.size else tables.year_mean
    dense = np.column_stack([
        per_source,
        cands.fused * 100.0, found.sum(axis=1), c_max, c_mean, c_last, affinity,
        np.log((count + 1.0) / (tables.mean_count + 1.0)),
        np.log1p(rec), rec / (count + 1.0),
        np.where(year_ok, (year - tables.year_mean) / 20.0, 0.0), (~year_ok).astype(np.float32),
        np.where(year_ok, np.abs(year - user_year) / 20.0, 0.0),
        np.full(m, np.log1p(hist.size)),
    ]).astype(np.float32)
    n_users = len(tables.user_features)
    known = 0 <= user_idx < n_users
    out = {
        "user_idx": np.full(m, user_idx if known else 0, dtype=np.int32),
        "item_idx": items.astype(np.int32),
        "content": np.ascontiguousarray(content, dtype=np.float32),
        "genres": np.ascontiguousarray(genres, dtype=np.float32),
        "dense": dense,
    }
    if tables.user_features.shape[1]:
        row = (tables.user_features[[user_idx]] if known
               else np.zeros((1, tables.user_features.shape[1]), dtype=np.float32))
        out["user_features"] = np.repeat(_override_one_hot(tables, row, user_features), m, axis=0)
    if tables.attributes is not None:
        out.update(tables.attributes.item.rows(items))
        side = tables.attributes.user
        user = side.rows(np.asarray([user_idx if known else 0]), known=np.asarray([known]))
        if user_features:
            user = side.overlay(user, [user_features])
        out.update({k: np.repeat(v, m, axis=0) for k, v in user.items()})
    return out


def _override_one_hot(tables: RankerFeatureTables, row: np.ndarray,
                      user_features: Mapping[str, Any] | None) -> np.ndarray:
    """The one-hot gender/age/occupation row with the request's values replacing the stored."""
    if not user_features:
        return row
    row = row.copy()
    names = tables.user_feature_names
    for col in USER_FEATURE_COLUMNS:
        if col not in user_features:
            continue
        block = [j for j, n in enumerate(names) if n.split("=", 1)[0] == col]
        value = category(user_features[col])
        row[0, block] = 0.0
        row[0, [j for j in block if names[j] == f"{col}={value}"]] = 1.0
    return row


def concat_features(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Row-wise concatenation of several :func:`candidate_features` outputs."""
    if not parts:
        raise ValidationError("concat_features needs at least one feature dict")
    return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}
