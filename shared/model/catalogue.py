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

from shared.contracts.errors import NotFoundError
from shared.model.cells import list_cell

_WORD = re.compile(r"[0-9a-z]+")


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
    """

    item_ids: np.ndarray
    titles: list[str]
    years: list[int | None]
    genres: list[list[str]]
    tags: list[list[str]]
    overviews: list[str | None]
    popularity: np.ndarray
    _order: np.ndarray = field(init=False, repr=False)
    _sorted: np.ndarray = field(init=False, repr=False)
    _next_id: int | None = field(init=False, repr=False, default=None)
    _tokens: dict[str, np.ndarray] = field(init=False, repr=False)
    _vocab: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.item_ids = id_array(self.item_ids)
        self._order = np.argsort(self.item_ids, kind="stable")
        self._sorted = self.item_ids[self._order]
        index: dict[str, list[int]] = defaultdict(list)
        for pos, title in enumerate(self.titles):
            for tok in set(normalise_title(title)):
                index[tok].append(pos)
        self._tokens = {t: np.asarray(v, dtype=np.int64) for t, v in index.items()}
        self._vocab = sorted(self._tokens)

    @classmethod
    def from_frame(cls, items: pd.DataFrame) -> Catalogue:
        """Build from the bundle's ``items.parquet`` table."""
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
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def next_item_id(self) -> int:
        """Where ids for new items start: above the catalogue's largest decimal id."""
        if self._next_id is None:
            self._next_id = next_numeric_id(self._sorted)
        return self._next_id

    def positions(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """[n] int64 positions of item ids; -1 where an id is not in the catalogue."""
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
        }

    def genre_mask(self, wanted: list[str]) -> np.ndarray:
        """[n] bool: items having any of the wanted genres (case-insensitive)."""
        want = {g.lower() for g in wanted}
        return np.fromiter(
            (bool(want & {g.lower() for g in gl}) for gl in self.genres), bool, len(self.genres)
        )

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
