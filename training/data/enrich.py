"""Fill ``items.overview`` from a CSV of plot texts keyed by TMDB or IMDb ids.

The CSV needs an ``overview`` column and one id column. TMDB ids are read from ``tmdbId``,
``tmdb_id`` or ``id`` (the Kaggle "TMDB 5000" file calls its TMDB id ``id``); IMDb ids from
``imdbId`` or ``imdb_id``, as numbers (``114709``, ``0114709``) or as ``tt0114709``. Rows are
joined to items through ``Dataset.links``, so only releases with ``links.csv`` (the CSV
releases) can be enriched.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import pandas as pd

from shared.contracts.errors import DataError
from training.data.dataset import Dataset

log = logging.getLogger(__name__)

TMDB_KEYS = ("tmdbId", "tmdb_id", "id")
"""Column names read as TMDB ids, in order of preference."""
IMDB_KEYS = ("imdbId", "imdb_id")
"""Column names read as IMDb ids."""
_AUTO_ORDER = ("tmdbId", "tmdb_id", "imdbId", "imdb_id", "id")


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline().lstrip("\ufeff")
    return next(csv.reader([first]), []) if first.strip() else []


def _pick_key(header: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in header:
            raise DataError(f"key column {key!r} is not in the header {header}; pass one of "
                            "its columns or key=None to detect it", path=str(path), line=1)
        return key
    for name in _AUTO_ORDER:
        if name in header:
            return name
    lowered = {h.lower(): h for h in header}
    for name in _AUTO_ORDER:
        if name.lower() in lowered:
            return lowered[name.lower()]
    raise DataError(
        f"no id column to join on: expected one of {list(TMDB_KEYS)} (TMDB ids) or "
        f"{list(IMDB_KEYS)} (IMDb ids such as tt0114709); the header has {header}",
        path=str(path), line=1)


def enrich_with_text(ds: Dataset, csv_path: str | Path, *, key: str | None = None) -> Dataset:
    """Join item overviews from ``csv_path`` onto ``ds.items`` through ``ds.links``.

    Args:
        ds: A dataset with a ``links`` table (``item_id``, ``imdb_id``, ``tmdb_id``).
        csv_path: CSV with an ``overview`` column and a TMDB or IMDb id column.
        key: The id column to join on. ``None`` picks the first present of ``tmdbId``,
            ``tmdb_id``, ``imdbId``, ``imdb_id``, ``id``. A name containing ``imdb`` is read
            as IMDb ids, any other as TMDB ids.

    Returns:
        A new Dataset whose ``items.overview`` holds the matched texts (items without a match
        keep their previous overview) and whose ``info`` gains ``items_with_overview``,
        ``items_with_overview_pct``, ``item_text_source`` and ``item_text_key``.

    Raises:
        DataError: The file is missing, has no usable id column or no ``overview`` column, or
            the dataset has no links.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise DataError("no such file; pass a CSV with an id column and an 'overview' column",
                        path=str(path))
    if ds.links is None:
        raise DataError(f"dataset {ds.name!r} has no links table (links.csv), so its items "
                        "cannot be matched to TMDB/IMDb ids; use a CSV release such as "
                        "ml-latest-small for text enrichment", path=str(path))
    header = _header(path)
    if "overview" not in header:
        raise DataError(f"no 'overview' column; the header has {header}",
                        path=str(path), line=1)
    key = _pick_key(header, key, path)
    kind = "imdb_id" if "imdb" in key.lower() else "tmdb_id"
    try:
        table = pd.read_csv(path, usecols=[key, "overview"], dtype=str, keep_default_na=False,
                            encoding="utf-8", encoding_errors="replace", engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"could not be parsed as CSV: {exc}", path=str(path)) from exc
    ids = table[key].astype(str).str.strip().str.lower().str.removeprefix("tt")
    ext = pd.to_numeric(ids.where(ids.str.fullmatch(r"\d+")), errors="coerce")
    text = table["overview"].astype(str).str.strip()
    usable = ext.notna() & (text != "")
    texts = pd.DataFrame({"ext": ext[usable].astype("int64"), "overview": text[usable]})
    texts = texts.drop_duplicates("ext", keep="first")

    links = ds.links[["item_id", kind]].dropna()
    links = pd.DataFrame({"item_id": links["item_id"].astype("int64"),
                          "ext": links[kind].astype("int64")})
    joined = links.merge(texts, on="ext", how="inner").drop_duplicates("item_id", keep="first")
    found = ds.items["item_id"].map(joined.set_index("item_id")["overview"])
    items = ds.items.copy()
    items["overview"] = pd.Series(
        [new if isinstance(new, str) else old for new, old in zip(found, ds.items["overview"],
                                                                   strict=True)],
        index=items.index, dtype=object)
    n_matched = int(found.notna().sum())
    n_with = int(items["overview"].notna().sum())
    pct = round(100.0 * n_with / len(items), 1) if len(items) else 0.0
    info = {**ds.info, "items_with_overview": n_with, "items_with_overview_pct": pct,
            "item_text_source": str(path), "item_text_key": key}
    log.info("%s: %d of %d items got an overview from %s via %s (%d usable rows of %d); "
             "%d items (%.1f%%) now have text", ds.name, n_matched, len(items), path.name,
             key, int(usable.sum()), len(table), n_with, pct)
    if n_matched == 0:
        log.warning("%s: no item matched any %s in %s; check the key column", ds.name, kind,
                    path)
    return dataclasses.replace(ds, items=items, info=info)
