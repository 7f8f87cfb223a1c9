"""The item catalogue the services serve: the bundle's items plus fresh ones.

Rows are in the bundle's item order (position = ``item_idx``); item ids are the
dataset's own strings (:mod:`shared.contracts.ids`). Lookups by id use a sorted array of
fixed-width strings and ``np.searchsorted``, so a million-item catalogue needs no Python
dict of a million entries and no id is ever read as a number. Title search
uses a token index (word -> item positions) built once at load.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shared.contracts.bundle_layout import ATTRIBUTE_PREFIX, AVAILABLE
from shared.contracts.errors import NotFoundError
from shared.model.cells import list_cell

_WORD = re.compile(r"[0-9a-z]+")
_GENRES_KEY = "\0genres"  # the genre list's index beside the attributes' (not a name)


def _inverted(lists: list[list[str]]) -> dict[str, np.ndarray]:
    """Lower-cased value -> sorted positions of the lists holding it."""
    found: dict[str, list[int]] = defaultdict(list)
    for pos, values in enumerate(lists):
        for v in {str(x).lower() for x in values}:
            found[v].append(pos)
    return {v: np.asarray(p, dtype=np.int64) for v, p in found.items()}


def normalise_title(text: str) -> list[str]:
    """Lower-case ASCII words of a title or query (accents folded)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _WORD.findall(folded)



def id_array(ids: Any) -> np.ndarray:
    """Ids as a numpy array of fixed-width strings (``<U``): what the catalogue searches.

    Integers (an old bundle's ids, a test's) become their decimal text.
    """
    arr = np.asarray(ids)
    if arr.dtype.kind == "U":
        return arr.reshape(-1)
    if arr.dtype.kind in "iu":
        return arr.astype(str).reshape(-1)
    return np.asarray([str(x) for x in arr.reshape(-1).tolist()], dtype=str).reshape(-1)


def next_numeric_id(ids: np.ndarray) -> int:
    """One more than the largest id made only of decimal digits (1 when there is none):
    where ids assigned to new items start. Ids are never read as numbers otherwise."""
    digits = [d.lstrip("0") or "0" for d in ids[np.char.isdigit(ids)].tolist()] if len(ids) else []
    if not digits:
        return 1
    return int(max(digits, key=lambda d: (len(d), d))) + 1  # by length, then text: by value


@dataclass
class Catalogue:
    """Items of one bundle, with id lookup, metadata and title search.

    Attributes:
        item_ids: [n] item ids in bundle order (a ``<U`` string array).
        titles: [n] titles.
        years: [n] release years (None when unknown).
        genres: [n] genre lists.
        tags: [n] tag lists (most frequent first).
        overviews: [n] overview texts or None.
        popularity: [n] int64 training interactions per item.
        attribute_types: Filterable attribute name -> ``"categorical"`` or ``"numeric"``
            (a MovieLens bundle: ``genres`` and ``year``).
        categorical: Per categorical attribute, per position, its values (a single value
            as a 1-element list, missing as ``[]``).
        numeric: Per numeric attribute, float32 [n] (NaN when missing).
        available: [n] bool; an unavailable item is never recommended.
        list_attributes: The categorical attributes declared as lists.
    """

    item_ids: np.ndarray
    titles: list[str]
    years: list[int | None]
    genres: list[list[str]]
    tags: list[list[str]]
    overviews: list[str | None]
    popularity: np.ndarray
    attribute_types: dict[str, str] = field(default_factory=dict)
    categorical: dict[str, list[list[str]]] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    available: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    list_attributes: set[str] = field(default_factory=set)
    _order: np.ndarray = field(init=False, repr=False)
    _sorted: np.ndarray = field(init=False, repr=False)
    _next_id: int | None = field(init=False, repr=False, default=None)
    _tokens: dict[str, np.ndarray] = field(init=False, repr=False)
    _vocab: list[str] = field(init=False, repr=False)
    _value_index: dict[str, dict[str, np.ndarray]] = field(init=False, repr=False)
    _lookup: dict[str, int] | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.item_ids = id_array(self.item_ids)
        n = len(self.item_ids)
        if not self.attribute_types:  # a MovieLens bundle, or one from before attributes
            self.attribute_types = {"genres": "categorical", "year": "numeric"}
            self.categorical = {"genres": [list(g) for g in self.genres]}
            self.numeric = {"year": np.asarray(
                [np.nan if y is None else float(y) for y in self.years], np.float32)}
            self.list_attributes = {"genres"}
        if len(self.available) != n:
            self.available = np.ones(n, dtype=bool)
        self.available = np.asarray(self.available, dtype=bool)
        self._value_index = {}
        self._order = np.argsort(self.item_ids, kind="stable")
        self._sorted = self.item_ids[self._order]
        index: dict[str, list[int]] = defaultdict(list)
        for pos, title in enumerate(self.titles):
            for tok in set(normalise_title(title)):
                index[tok].append(pos)
        self._tokens = {t: np.asarray(v, dtype=np.int64) for t, v in index.items()}
        self._vocab = sorted(self._tokens)

    @classmethod
    def from_frame(
        cls, items: pd.DataFrame, attributes: list[dict[str, Any]] | None = None
    ) -> Catalogue:
        """Build from the bundle's ``items.parquet`` table and the manifest's attribute
        declarations (``components.item_attributes``: ``[{name, type, list}]``; None or
        absent columns: genres and year are the attributes, every item is available)."""
        types: dict[str, str] = {}
        categorical: dict[str, list[list[str]]] = {}
        numeric: dict[str, np.ndarray] = {}
        lists: set[str] = set()
        for decl in attributes or []:
            name, col = str(decl["name"]), ATTRIBUTE_PREFIX + str(decl["name"])
            if col not in items.columns:
                continue
            if decl.get("type") == "numeric":
                types[name] = "numeric"
                numeric[name] = pd.to_numeric(items[col], errors="coerce").to_numpy(np.float32)
            elif decl.get("type") == "categorical":
                types[name] = "categorical"
                categorical[name] = [list_cell(v) for v in items[col].tolist()]
                if decl.get("list"):
                    lists.add(name)
        available = (
            items[AVAILABLE].fillna(True).to_numpy(bool)
            if AVAILABLE in items.columns
            else np.ones(len(items), dtype=bool)
        )
        years = [None if pd.isna(y) else int(y) for y in items["year"].tolist()]
        overviews = [None if (o is None or pd.isna(o)) else str(o) for o in items["overview"]]
        pop = items["popularity"] if "popularity" in items.columns else np.zeros(len(items))
        return cls(
            item_ids=id_array(items["item_id"].to_numpy()),
            titles=[str(t) for t in items["title"].tolist()],
            years=years,
            genres=[list_cell(g) for g in items["genres"].tolist()],
            tags=[list_cell(t) for t in items["tags"].tolist()],
            overviews=overviews,
            popularity=np.asarray(pop, dtype=np.int64),
            attribute_types=types,
            categorical=categorical,
            numeric=numeric,
            available=available,
            list_attributes=lists,
        )

    def attributes(self, pos: int) -> dict[str, Any]:
        """The filterable attributes of one item (lists for list attributes, a single value
        or None otherwise; numbers as float, None when missing)."""
        out: dict[str, Any] = {}
        for name, kind in self.attribute_types.items():
            if kind == "numeric":
                v = float(self.numeric[name][pos])
                out[name] = None if np.isnan(v) else v
            elif name in self.list_attributes:
                out[name] = list(self.categorical[name][pos])
            else:
                vals = self.categorical[name][pos]
                out[name] = vals[0] if vals else None
        return out

    def value_positions(self, name: str) -> dict[str, np.ndarray]:
        """Lower-cased value -> sorted item positions having it, for one categorical
        attribute (built on first use, then kept)."""
        index = self._value_index.get(name)
        if index is None:
            index = _inverted(self.categorical[name])
            self._value_index[name] = index
        return index

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def next_item_id(self) -> int:
        """Where ids for new items start: above the catalogue's largest decimal id."""
        if self._next_id is None:
            self._next_id = next_numeric_id(self._sorted)
        return self._next_id

    def positions(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """[n] int64 positions of item ids; -1 where an id is not in the catalogue.

        A list (a request's ids) is looked up in a dict built on first use, several times
        cheaper than converting it to a string array and searching the sorted ids.
        """
        if isinstance(ids, list) and ids:
            lookup = self._lookup
            if lookup is None:
                # reversed: an id listed twice maps to its first position, as searched below
                n = len(self.item_ids)
                lookup = self._lookup = dict(
                    zip(reversed(self.item_ids.tolist()), range(n - 1, -1, -1), strict=True)
                )
            get = lookup.get
            out = np.fromiter((get(x, -1) for x in ids), np.int64, len(ids))
            # A miss may be an id given as a number ("296" is looked up as text below).
            if out.min() >= 0 or all(type(x) is str for x in ids):
                return out
        arr = id_array(ids)
        if not len(self._sorted) or not arr.size:
            return np.full(arr.shape, -1, dtype=np.int64)
        at = np.clip(np.searchsorted(self._sorted, arr), 0, len(self._sorted) - 1)
        found = self._sorted[at] == arr
        return np.where(found, self._order[at], -1).astype(np.int64)

    def position(self, item_id: str) -> int:
        """Position of one id; raises NotFoundError when absent."""
        pos = int(self.positions([item_id])[0])
        if pos < 0:
            raise NotFoundError(
                f"item {item_id!r} is not in the catalogue; look ids up with GET /v1/items?q=..."
            )
        return pos

    def record(self, pos: int) -> dict[str, Any]:
        """The item at a position as a JSON-ready dict."""
        return {
            "item_id": str(self.item_ids[pos]),
            "title": self.titles[pos],
            "year": self.years[pos],
            "genres": self.genres[pos],
            "tags": self.tags[pos],
            "overview": self.overviews[pos],
            "popularity": int(self.popularity[pos]),
            "fresh": False,
            "attributes": self.attributes(pos),
            "available": bool(self.available[pos]),
        }

    def genre_mask(self, wanted: list[str]) -> np.ndarray:
        """[n] bool: items having any of the wanted genres (case-insensitive); through an
        inverted index built on first use, so a request costs O(items of those genres)."""
        index = self._value_index.get(_GENRES_KEY)
        if index is None:
            index = _inverted(self.genres)
            self._value_index[_GENRES_KEY] = index
        mask = np.zeros(len(self.genres), dtype=bool)
        for g in {g.lower() for g in wanted}:
            mask[index.get(g, np.zeros(0, np.int64))] = True
        return mask

    def _prefixed(self, prefix: str) -> np.ndarray:
        """Positions of items with a title word starting with ``prefix``."""
        lo = bisect.bisect_left(self._vocab, prefix)
        hi = bisect.bisect_left(self._vocab, prefix + "\x7f")
        hits = [self._tokens[t] for t in self._vocab[lo:hi]]
        return np.unique(np.concatenate(hits)) if hits else np.zeros(0, np.int64)

    def search(self, query: str, limit: int) -> list[int]:
        """Positions of items whose title has every query word (prefix match on the last).

        The last word matches as a prefix when it has two or more characters.
        Ranked by: titles having every query word as a whole word first (so
        "alien" puts "Alien" before "Aliens"), then popularity, then shorter title,
        then catalogue order.
        """
        words = normalise_title(query)
        if not words or limit <= 0:
            return []
        empty = np.zeros(0, np.int64)
        found: np.ndarray | None = None
        for w in words[:-1]:
            arr = self._tokens.get(w, empty)
            found = arr if found is None else np.intersect1d(found, arr)
        last = words[-1]
        last_arr = self._prefixed(last) if len(last) >= 2 else self._tokens.get(last, empty)
        found = last_arr if found is None else np.intersect1d(found, last_arr)
        if not found.size:
            return []
        whole = np.isin(found, self._tokens.get(last, empty))
        title_len = np.asarray([len(self.titles[p]) for p in found])
        order = np.lexsort((found, title_len, -self.popularity[found], ~whole))
        return [int(p) for p in found[order][:limit]]
