"""The item catalogue the services serve: the bundle's items plus fresh ones.

Rows are in the bundle's item order (position = ``item_idx``); item ids are the
dataset's own. Lookups by id use a sorted id array and ``np.searchsorted`` so a
million-item catalogue needs no Python dict of a million entries. Title search
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


# Ids up to LUT_SLACK * n_items + LUT_BASE get a direct id -> position table (int32,
# 4 bytes per id); sparser ids keep the binary search, slower for its cache misses
# (figures: docs/scaling.md#measurements-behind-code-choices).
LUT_SLACK, LUT_BASE = 8, 1 << 20


def _position_table(item_ids: np.ndarray) -> np.ndarray | None:
    """[max_id + 1] int32 positions (-1 = absent), or None when ids are too sparse."""
    if not len(item_ids) or int(item_ids.min()) < 0:
        return None
    top = int(item_ids.max())
    if top + 1 > LUT_SLACK * len(item_ids) + LUT_BASE or len(item_ids) >= 2**31:
        return None
    lut = np.full(top + 1, -1, dtype=np.int32)
    # written in reverse so a duplicated id maps to its first position, as the search does
    lut[item_ids[::-1]] = np.arange(len(item_ids) - 1, -1, -1, dtype=np.int32)
    return lut


@dataclass
class Catalogue:
    """Items of one bundle, with id lookup, metadata and title search.

    Attributes:
        item_ids: [n] int64 item ids in bundle order.
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
    _lut: np.ndarray | None = field(init=False, repr=False)
    _tokens: dict[str, np.ndarray] = field(init=False, repr=False)
    _vocab: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._order = np.argsort(self.item_ids, kind="stable")
        self._sorted = self.item_ids[self._order]
        self._lut = _position_table(self.item_ids)
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
            item_ids=items["item_id"].to_numpy(dtype=np.int64),
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
    def max_item_id(self) -> int:
        """The largest item id (new items get ids above it)."""
        return int(self._sorted[-1]) if len(self._sorted) else 0

    def positions(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """[n] int64 positions of item ids; -1 where an id is not in the catalogue."""
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not len(self._sorted) or not arr.size:
            return np.full(arr.shape, -1, dtype=np.int64)
        if self._lut is not None:  # a direct table: no binary search over the catalogue
            inside = (arr >= 0) & (arr < len(self._lut))
            return np.where(inside, self._lut[np.where(inside, arr, 0)], -1).astype(np.int64)
        at = np.clip(np.searchsorted(self._sorted, arr), 0, len(self._sorted) - 1)
        found = self._sorted[at] == arr
        return np.where(found, self._order[at], -1)

    def position(self, item_id: int) -> int:
        """Position of one id; raises NotFoundError when absent."""
        pos = int(self.positions([item_id])[0])
        if pos < 0:
            raise NotFoundError(
                f"item {item_id} is not in the catalogue; look ids up with GET /v1/items?q=..."
            )
        return pos

    def record(self, pos: int) -> dict[str, Any]:
        """The item at a position as a JSON-ready dict."""
        return {
            "item_id": int(self.item_ids[pos]),
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
