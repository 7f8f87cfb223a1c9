"""Item and user attributes as model features: one encoder for training and serving.

:class:`AttributeEncoder` turns every categorical and numeric attribute of a dataset in the
project's format (docs/own-data.md) into the arrays the two towers and the ranker read, and
does it the same way for the catalogue (rows computed once at training), for items added at
run time and for the attributes a request sends (``user_features``):

* a categorical attribute (one value or a list) becomes an int32 row of ``max_values``
  vocabulary positions: 0 = padding (no value), 1 = a value outside the vocabulary (OOV),
  ``2 + j`` = ``vocab[j]``. The models embed each position and mean-pool the non-padding
  ones (:class:`shared.model.layers.MaskedMeanPooling`), so a list is a mean-pooled
  multi-hot. The vocabulary is the attribute's most frequent values in the *training*
  interactions (an item value counts once per training interaction of the item, a user value
  once per user with training interactions), at most ``max_vocab``, ties alphabetical;
* a numeric attribute becomes two float32 columns: its quantile position (of the value
  rounded to float32, as the catalogue keeps it) among the *training* items' (users')
  values, mapped to [-1, 1] (robust to skew and outliers; values
  outside the training range clip to the ends), and a missing indicator (1 = no value,
  then the position is 0).

Input names are positional (``item_cat_0``, ``item_num``, ``user_cat_0``, ``user_num``) so
any column header is safe as an attribute name. The encoder saves as JSON (vocabularies,
quantiles) plus ``.npz`` (the catalogue's and the known users' rows), no pickle. Numpy only;
the services import this module.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import BundleError, ConfigError
from shared.model.cells import is_missing, list_cell

SCHEMA_VERSION = 1
MAX_VOCAB = 1000
"""Most values kept per categorical attribute (the rest share the OOV row)."""
MAX_VALUES = 16
"""Most values of one list attribute a row keeps (the first ones)."""
N_QUANTILES = 33
PAD, OOV = 0, 1
SIDES = ("item", "user")
FEATURE_TYPES = ("categorical", "numeric")


def category(value: Any) -> str | None:
    """Canonical text of a categorical value (``25.0`` -> ``"25"``), None when missing."""
    if is_missing(value):
        return None
    if isinstance(value, float | np.floating):
        if not math.isfinite(float(value)):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, np.integer | bool | np.bool_):
        return str(int(value)) if not isinstance(value, bool | np.bool_) else str(bool(value))
    text = " ".join(str(value).split())
    return text or None


def categories(value: Any, is_list: bool) -> list[str]:
    """The values of a cell: a list attribute's items (lists or ``|``-joined text), else one."""
    if is_list or isinstance(value, list | tuple | np.ndarray):
        return [c for c in (category(v) for v in list_cell(value)) if c is not None]
    one = category(value)
    return [] if one is None else [one]


def number(value: Any) -> float:
    """A numeric cell as float64; NaN when missing or not a finite number."""
    if is_missing(value) or isinstance(value, bool | np.bool_):
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


@dataclass
class CategoricalSpec:
    """One categorical attribute: its vocabulary and row width."""

    name: str
    vocab: list[str]
    max_values: int
    is_list: bool = False

    def __post_init__(self) -> None:
        self._index = {v: j + 2 for j, v in enumerate(self.vocab)}

    @property
    def rows(self) -> int:
        """Embedding table rows: padding, OOV and the vocabulary."""
        return len(self.vocab) + 2

    def encode(self, cells: Sequence[Any]) -> np.ndarray:
        """[B, max_values] int32 vocabulary positions (first values kept, duplicates once)."""
        out = np.zeros((len(cells), self.max_values), dtype=np.int32)
        for r, cell in enumerate(cells):
            codes = list(dict.fromkeys(self._index.get(v, OOV)
                                       for v in categories(cell, self.is_list)))
            codes = codes[: self.max_values]
            out[r, : len(codes)] = codes
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "vocab": self.vocab, "max_values": self.max_values,
                "is_list": self.is_list}


@dataclass
class NumericSpec:
    """One numeric attribute: the training quantiles its values are placed among."""

    name: str
    knots: list[float]
    targets: list[float]

    def encode(self, cells: Sequence[Any]) -> np.ndarray:
        """[B, 2] float32: quantile position in [-1, 1] (0 when missing), missing indicator."""
        # float32 first: the catalogue keeps numbers as float32, the dataset as float64
        x = np.asarray([number(c) for c in cells], dtype=np.float32).astype(np.float64)
        missing = ~np.isfinite(x)
        if len(self.knots) > 1:
            pos = np.interp(np.where(missing, self.knots[0], x), self.knots, self.targets)
        else:
            pos = np.zeros(len(x))
        pos = np.where(missing, 0.0, pos)
        return np.column_stack([pos, missing.astype(np.float64)]).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "knots": self.knots, "targets": self.targets}


def _quantile_map(values: np.ndarray) -> tuple[list[float], list[float]]:
    """Strictly increasing knots (training quantiles) and their positions in [-1, 1]."""
    vals = values[np.isfinite(values)]
    if not vals.size:
        return [], []
    qs = np.quantile(vals, np.linspace(0.0, 1.0, N_QUANTILES))
    targets = np.linspace(-1.0, 1.0, N_QUANTILES)
    knots, where = np.unique(qs, return_inverse=True)  # ties share their mean position
    pos = np.bincount(where, weights=targets) / np.bincount(where)
    return [float(k) for k in knots], [float(p) for p in pos]


def _vocab(counts: Counter[str], max_vocab: int) -> list[str]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [v for v, _ in ranked[:max_vocab]]


@dataclass
class SideEncoder:
    """The categorical and numeric attributes of one side (items or users) and the rows
    of the entities known at training (catalogue items, training users)."""

    side: str
    categorical: list[CategoricalSpec] = field(default_factory=list)
    numeric: list[NumericSpec] = field(default_factory=list)
    cat_rows: list[np.ndarray] = field(default_factory=list)  # per spec [n, L] int32
    num_rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    @property
    def names(self) -> list[str]:
        """Attribute names fed to the models (categorical first)."""
        return [s.name for s in self.categorical] + [s.name for s in self.numeric]

    def input_names(self) -> list[str]:
        """The model input names of this side."""
        names = [f"{self.side}_cat_{k}" for k in range(len(self.categorical))]
        return names + ([f"{self.side}_num"] if self.numeric else [])

    def input_specs(self) -> dict[str, tuple[int, int]]:
        """Input name -> (width, embedding rows; 0 for the float ``*_num`` input)."""
        out = {f"{self.side}_cat_{k}": (s.max_values, s.rows)
               for k, s in enumerate(self.categorical)}
        if self.numeric:
            out[f"{self.side}_num"] = (2 * len(self.numeric), 0)
        return out

    def encode_records(self, records: Sequence[Mapping[str, Any] | None]) -> dict[str, np.ndarray]:
        """Inputs of rows given as ``{attribute: value}`` dicts (None / absent = missing)."""
        recs = [r or {} for r in records]
        out = {f"{self.side}_cat_{k}": s.encode([r.get(s.name) for r in recs])
               for k, s in enumerate(self.categorical)}
        if self.numeric:
            out[f"{self.side}_num"] = self._numeric({s.name: [r.get(s.name) for r in recs]
                                                     for s in self.numeric}, len(recs))
        return out

    def encode_columns(self, columns: Mapping[str, Sequence[Any]], n: int) -> dict[str, np.ndarray]:
        """Inputs of ``n`` rows given as columns (a missing column = missing values)."""
        none: list[Any] = [None] * n
        out = {f"{self.side}_cat_{k}": s.encode(list(columns.get(s.name, none)))
               for k, s in enumerate(self.categorical)}
        if self.numeric:
            out[f"{self.side}_num"] = self._numeric(columns, n)
        return out

    def _numeric(self, columns: Mapping[str, Sequence[Any]], n: int) -> np.ndarray:
        none: list[Any] = [None] * n
        blocks = [s.encode(list(columns.get(s.name, none))) for s in self.numeric]
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), np.float32)

    def rows(self, idx: np.ndarray, known: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Stored inputs of entities ``idx`` (rows where ``known`` is False: all missing)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        ok = np.ones(len(idx), bool) if known is None else np.asarray(known, bool)
        safe = np.where(ok, idx, 0)
        out: dict[str, np.ndarray] = {}
        for k, (spec, table) in enumerate(zip(self.categorical, self.cat_rows, strict=True)):
            got = table[safe] if len(table) else np.zeros((len(idx), spec.max_values), np.int32)
            out[f"{self.side}_cat_{k}"] = np.where(ok[:, None], got, PAD).astype(np.int32)
        if self.numeric:
            width = 2 * len(self.numeric)
            got = (self.num_rows[safe] if len(self.num_rows)
                   else np.zeros((len(idx), width), np.float32))
            empty = np.tile(np.asarray([0.0, 1.0], np.float32), len(self.numeric))
            out[f"{self.side}_num"] = np.where(ok[:, None], got, empty).astype(np.float32)
        return out

    def overlay(self, base: dict[str, np.ndarray],
                records: Sequence[Mapping[str, Any] | None]) -> dict[str, np.ndarray]:
        """``base`` rows with the attributes a record names replacing the stored ones."""
        if not any(records):
            return base
        out = {k: v.copy() for k, v in base.items()}
        for r, rec in enumerate(records):
            if not rec:
                continue
            for k, spec in enumerate(self.categorical):
                if spec.name in rec:
                    out[f"{self.side}_cat_{k}"][r] = spec.encode([rec[spec.name]])[0]
            for k, num in enumerate(self.numeric):
                if num.name in rec:
                    out[f"{self.side}_num"][r, 2 * k: 2 * k + 2] = num.encode([rec[num.name]])[0]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"categorical": [s.to_dict() for s in self.categorical],
                "numeric": [s.to_dict() for s in self.numeric]}


def _fit_side(side: str, table: Any, types: Mapping[str, Mapping[str, Any]],
              weights: np.ndarray, skip: set[str], max_vocab: int,
              max_values: int) -> SideEncoder:
    """Fit one side on the rows with a positive training weight; encode every row."""
    enc = SideEncoder(side)
    if table is None or not len(table):
        return enc
    n = len(table)
    train_rows = np.flatnonzero(weights > 0)
    for name, spec in types.items():
        if name in skip or name not in table.columns:
            continue
        kind, is_list = spec.get("type"), bool(spec.get("list", False))
        cells = table[name].tolist()
        if kind == "categorical":
            parsed = [categories(c, is_list) for c in cells]
            counts: Counter[str] = Counter()
            for r in train_rows:
                for v in set(parsed[r]):
                    counts[v] += int(weights[r])
            width = max((len(p) for p in parsed), default=1) if is_list else 1
            cat = CategoricalSpec(name, _vocab(counts, max_vocab),
                                  max(1, min(width, max_values)), is_list)
            enc.categorical.append(cat)
            enc.cat_rows.append(cat.encode(cells))
        elif kind == "numeric":
            vals = np.asarray([number(c) for c in cells], dtype=np.float32).astype(np.float64)
            knots, targets = _quantile_map(vals[train_rows])
            enc.numeric.append(NumericSpec(name, knots, targets))
    if enc.numeric:
        enc.num_rows = enc._numeric({s.name: table[s.name].tolist() for s in enc.numeric}, n)
    return enc


@dataclass
class AttributeEncoder:
    """Both sides' attribute features (see the module docstring)."""

    item: SideEncoder = field(default_factory=lambda: SideEncoder("item"))
    user: SideEncoder = field(default_factory=lambda: SideEncoder("user"))

    @classmethod
    def fit(
        cls,
        *,
        item_table: Any,
        item_types: Mapping[str, Mapping[str, Any]],
        train_item_idx: np.ndarray,
        user_table: Any = None,
        user_types: Mapping[str, Mapping[str, Any]] | None = None,
        train_user_idx: np.ndarray | None = None,
        skip_items: Sequence[str] = (),
        skip_users: Sequence[str] = (),
        max_vocab: int = MAX_VOCAB,
        max_values: int = MAX_VALUES,
    ) -> AttributeEncoder:
        """Vocabularies and quantiles from the training interactions only.

        Args:
            item_table: Attribute columns aligned to ``item_idx`` (row i = item i), or None.
            item_types: Attribute name -> ``{"type": "categorical"|"numeric"|..., "list":
                bool}``; other types (text, external ids) are not features.
            train_item_idx: [N] item of each training interaction.
            user_table: Attribute columns aligned to ``user_idx``, or None.
            user_types: As ``item_types`` for users.
            train_user_idx: [N] user of each training interaction.
            skip_items: Attributes the models already read another way (genres, year).
            skip_users: Likewise (the gender/age/occupation user features).
            max_vocab: Most values per categorical attribute.
            max_values: Most values per row of a list attribute.
        """
        if max_vocab < 1 or max_values < 1:
            raise ConfigError(f"max_vocab and max_values must be >= 1, got {max_vocab}, "
                              f"{max_values}")
        n_items = 0 if item_table is None else len(item_table)
        item_w = np.bincount(np.asarray(train_item_idx, np.int64), minlength=n_items)[:n_items]
        item = _fit_side("item", item_table, item_types, item_w, set(skip_items), max_vocab,
                         max_values)
        user = SideEncoder("user")
        if user_table is not None and user_types and train_user_idx is not None:
            n_users = len(user_table)
            seen = np.bincount(np.asarray(train_user_idx, np.int64), minlength=n_users)[:n_users]
            user = _fit_side("user", user_table, user_types, (seen > 0).astype(np.int64),
                             set(skip_users), max_vocab, max_values)
        return cls(item, user)

    @property
    def empty(self) -> bool:
        """True when no attribute feeds the models."""
        return not (self.item.names or self.user.names)

    # ------------------------------------------------------------------ I/O
    def save(self, folder: str | Path, stem: str = "attributes") -> dict[str, str]:
        """Write ``<stem>.json`` (specs) and ``<stem>.npz`` (stored rows), no pickle."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"schema_version": SCHEMA_VERSION, "item": self.item.to_dict(),
                "user": self.user.to_dict()}
        (out / f"{stem}.json").write_text(json.dumps(meta, indent=1))
        arrays: dict[str, Any] = {}
        for side in (self.item, self.user):
            for k, rows in enumerate(side.cat_rows):
                arrays[f"{side.side}_cat_{k}"] = np.asarray(rows, np.int32)
            arrays[f"{side.side}_num"] = np.asarray(side.num_rows, np.float32)
        np.savez(out / f"{stem}.npz", **arrays)
        return {"meta": str(out / f"{stem}.json"), "arrays": str(out / f"{stem}.npz")}

    @classmethod
    def load(cls, folder: str | Path, stem: str = "attributes") -> AttributeEncoder | None:
        """Read what :meth:`save` wrote; None when the folder has no such files (older
        bundles, datasets without attributes)."""
        meta_path, arr_path = Path(folder) / f"{stem}.json", Path(folder) / f"{stem}.npz"
        if not meta_path.exists() and not arr_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            with np.load(arr_path, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in z.files}
            if meta.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"schema version {meta.get('schema_version')!r}, expected "
                                 f"{SCHEMA_VERSION}")
            sides = []
            for side in SIDES:
                raw = meta[side]
                cats = [CategoricalSpec(c["name"], list(c["vocab"]), int(c["max_values"]),
                                        bool(c.get("is_list", False)))
                        for c in raw["categorical"]]
                nums = [NumericSpec(x["name"], [float(v) for v in x["knots"]],
                                    [float(v) for v in x["targets"]]) for x in raw["numeric"]]
                sides.append(SideEncoder(
                    side, cats, nums, [arrays[f"{side}_cat_{k}"] for k in range(len(cats))],
                    arrays[f"{side}_num"]))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise BundleError(
                f"cannot read the attribute encoder {meta_path} / {arr_path.name}: {exc}; "
                "rebuild the bundle with `hybridrec train`") from exc
        return cls(sides[0], sides[1])
