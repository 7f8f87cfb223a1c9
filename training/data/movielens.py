"""Readers for the MovieLens releases, returning the canonical :class:`Dataset`.

Layouts, read from a folder or its ``.zip`` (files at the top or inside one folder):
ml-latest-small/ml-latest/ml-25m/ml-32m (``ratings.csv``, ``movies.csv``, optional
``tags.csv``/``links.csv``; UTF-8 with a header), ml-1m (``ratings.dat``, ``movies.dat``,
``users.dat``; ``::``-separated Latin-1) and ml-100k (``u.data`` tab-separated; ``u.item``,
``u.user``, optional ``u.genre``; ``|``-separated Latin-1).

Rules: ratings must be on the release's scale (0.5..5.0 in half stars; 1..5 for ml-100k/ml-1m)
and name known items (and users, where a users file exists). Duplicate (user, item) pairs keep
the latest timestamp (the later line on a tie), counted in ``info["duplicates_dropped"]``;
interactions otherwise keep file order. Titles lose their trailing ``(YYYY)``, which becomes
``year``; ``(no genres listed)`` and ml-100k's ``unknown`` genre give ``[]``. ``tags.csv``
becomes ``Dataset.tags``: one row per tag event (user, item, lower-cased and stripped tag,
timestamp; empty tags and tags of unknown items dropped). Items' ``tags`` stay empty here:
user tags are only turned into item text by :mod:`training.data.view`, from training pairs.
Bad input raises :class:`shared.contracts.errors.DataError` naming the file and 1-based
line (a header is line 1). pandas' C parser with explicit dtypes reads the tables: no Python loop
over ratings.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import zipfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from shared.contracts.errors import DataError
from training.data.dataset import ITEM_COLUMNS, TAG_COLUMNS, Dataset, keep_latest_pairs

log = logging.getLogger(__name__)

ML1M_OCCUPATIONS: dict[int, str] = {
    0: "other", 1: "academic/educator", 2: "artist", 3: "clerical/admin",
    4: "college/grad student", 5: "customer service", 6: "doctor/health care",
    7: "executive/managerial", 8: "farmer", 9: "homemaker", 10: "K-12 student", 11: "lawyer",
    12: "programmer", 13: "retired", 14: "sales/marketing", 15: "scientist",
    16: "self-employed", 17: "technician/engineer", 18: "tradesman/craftsman",
    19: "unemployed", 20: "writer",
}  # fmt: skip
"""ml-1m ``users.dat`` occupation codes, as listed in the ml-1m README."""

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genre flags of ml-100k ``u.item``, in order (used when ``u.genre`` is absent)."""

_NO_GENRES = {"", "(no genres listed)", "unknown"}
_NAME_RE = re.compile(r"ml-(latest-small|latest|100k|1m|25m|32m)(?![a-z0-9])", re.IGNORECASE)
_TITLE_YEAR_RE = r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$"
_MARKERS = {"ratings.csv": "csv", "ratings.dat": "ml-1m", "u.data": "ml-100k"}
_LAYOUT = {  # ratings, items, users ("" = none) files, then optional extras
    "csv": ("ratings.csv", "movies.csv", "", "tags.csv", "links.csv"),
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
    "ml-100k": ("u.data", "u.item", "u.user", "u.genre"),
}
_NUMERIC = ("int64", "float32", "float64", "Int64", "int8")


class _Source:
    """A release folder or zip whose files are found by base name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.files: dict[str, str] = {}
        self.inner = ""
        if path.is_dir():
            root = path
            if not any((path / m).is_file() for m in _MARKERS):
                subs = [d for d in sorted(path.iterdir()) if d.is_dir()]
                hits = [d for d in subs if any((d / m).is_file() for m in _MARKERS)]
                root = hits[0] if len(hits) == 1 else path
            self.inner = root.name
            self.files = {p.name: str(p) for p in root.iterdir() if p.is_file()}
        elif path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile as exc:
                raise DataError(
                    "is neither a folder nor a valid .zip; pass a MovieLens folder or its zip "
                    "(for example data/ml-latest-small.zip)", path=str(path)) from exc
            for member in sorted(self.zip.namelist(), key=lambda m: m.count("/")):
                parts = member.split("/")
                if member.endswith("/") or len(parts) > 2 or parts[0] == "__MACOSX":
                    continue
                self.files.setdefault(parts[-1], member)
                if len(parts) == 2 and parts[-1] in _MARKERS:
                    self.inner = self.inner or parts[0]
        else:
            raise DataError("no such file or folder; pass a MovieLens folder or its .zip "
                            "(for example data/ml-latest-small.zip)", path=str(path))
        found = [fmt for marker, fmt in _MARKERS.items() if marker in self.files]
        if not found:
            raise DataError(
                "no MovieLens ratings file found: expected ratings.csv (ml-latest*, ml-25m, "
                f"ml-32m), ratings.dat (ml-1m) or u.data (ml-100k); found {sorted(self.files)}",
                path=str(path))
        self.fmt = found[0]

    def label(self, name: str) -> str:
        """How messages name a file: its path, or ``zip:member``."""
        if name not in self.files:
            return f"{self.path}/{name}" if self.zip is None else f"{self.path}:{name}"
        return self.files[name] if self.zip is None else f"{self.path}:{self.files[name]}"

    def open(self, name: str) -> IO[bytes]:
        if name not in self.files:
            raise DataError(f"missing file {name} (needed for the {self.fmt} layout)",
                            path=self.label(name))
        if self.zip is not None:
            return self.zip.open(self.files[name])
        return open(self.files[name], "rb")

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def sha256(self) -> str:
        """sha256 of the zip, or of the release's files concatenated in name order."""
        digest = hashlib.sha256()
        paths = [str(self.path)] if self.zip is not None else [
            self.files[n] for n in sorted(self.files) if n in _LAYOUT[self.fmt]]
        for p in paths:
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()


def _read_table(src: _Source, name: str, columns: dict[str, str], *, names: list[str] | None = None,
                sep: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """Read the ``columns`` (name -> dtype) of one file; ``names`` means "no header row"."""
    label = src.label(name)
    if names is None:
        with src.open(name) as fh:
            first = fh.readline().decode(encoding, errors="replace").lstrip("\ufeff").strip()
        header = next(csv.reader([first])) if first else []
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"missing required column(s) {missing}; the header has {header}",
                            path=label, line=1)
    opts: dict[str, object] = {
        "sep": "\x1f" if sep == "::" else sep, "header": 0 if names is None else None,
        "names": names, "encoding": encoding,
        "keep_default_na": False, "na_values": [""], "engine": "c",
        "quoting": csv.QUOTE_MINIMAL if names is None else csv.QUOTE_NONE,
    }

    def source() -> IO[bytes]:
        if sep != "::":
            return src.open(name)
        with src.open(name) as fh:  # multi-character separator: swap it for one byte
            return io.BytesIO(fh.read().replace(b"::", b"\x1f"))

    dtypes = defaultdict(lambda: "str", columns)  # unused columns stay text
    try:
        with source() as fh:
            table = pd.read_csv(fh, dtype=dtypes, **opts)  # type: ignore[call-overload]
        return table[list(columns)]  # all fields were read so that extra fields are errors
    except pd.errors.EmptyDataError:  # a 0-byte file: no rows
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    except (ValueError, pd.errors.ParserError) as exc:  # UnicodeDecodeError is a ValueError
        raise _diagnose(source, label, exc, columns, opts, header=names is None) from exc


def _diagnose(source: Callable[[], IO[bytes]], label: str, exc: Exception,
              columns: dict[str, str], opts: dict[str, object], *, header: bool) -> DataError:
    """Find the first line that broke a fast typed read and say what is wrong with it."""
    if isinstance(exc, UnicodeDecodeError):
        return DataError(f"is not valid {opts['encoding']} text ({exc.reason} at byte "
                         f"{exc.start} of a read block); re-save it as {opts['encoding']}",
                         path=label)
    try:
        with source() as fh:
            raw = pd.read_csv(fh, dtype=str, skip_blank_lines=False,  # type: ignore[call-overload]
                              **opts).fillna("")
    except (ValueError, pd.errors.ParserError) as exc2:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc2))
        if match:
            return DataError(f"expected {match[1]} fields, found {match[3]}",
                             path=label, line=int(match[2]))
        return DataError(f"could not be parsed: {exc2}", path=label)
    blank = (raw == "").all(axis=1).to_numpy()
    for col, dtype in columns.items():
        if dtype not in _NUMERIC:
            continue
        text = raw[col].str.strip()
        num = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = num.isna().to_numpy() & ~blank
        if dtype == "Int64":
            bad &= (text != "").to_numpy()
        if dtype in ("int64", "Int64", "int8"):
            bad |= (num.notna() & (num % 1 != 0)).to_numpy()
        if bad.any():
            pos = int(np.argmax(bad))
            value = raw[col].iloc[pos]
            what = "an integer" if dtype in ("int64", "Int64", "int8") else "a number"
            problem = "is empty" if value == "" else f"has {value!r}"
            return DataError(f"column {col!r} {problem}; expected {what}",
                             path=label, line=pos + (2 if header else 1))
    return DataError(f"could not be parsed: {exc}", path=label)


def _check(bad: pd.Series | np.ndarray, label: str, header: bool,
           problem: Callable[[int], str]) -> None:
    """Raise a DataError naming the first row where ``bad`` holds (positional)."""
    mask = np.asarray(bad, dtype=bool)
    if mask.any():
        pos = int(np.argmax(mask))
        n = int(mask.sum())
        more = f" ({n} rows have this problem)" if n > 1 else ""
        raise DataError(problem(pos) + more, path=label, line=pos + (2 if header else 1))


def _items_frame(item_id: pd.Series, raw_title: pd.Series, genres: list[list[str]],
                 label: str, header: bool,
                 year_fallback: pd.Series | None = None) -> pd.DataFrame:
    """Build the canonical items table (title/year split, genre lists, no tags)."""
    _check(item_id.duplicated(), label, header,
           lambda i: f"item id {item_id.iloc[i]} appears twice")
    raw_title = raw_title.fillna("").astype(str)
    parts = raw_title.str.extract(_TITLE_YEAR_RE)
    year = pd.to_numeric(parts["year"], errors="coerce")
    if year_fallback is not None:
        year = year.fillna(pd.to_numeric(year_fallback.fillna("").str[-4:], errors="coerce"))
    items = pd.DataFrame({
        "item_id": item_id.astype("int64").to_numpy(),
        "title": parts["title"].fillna(raw_title.str.strip()).astype(str).to_numpy(),
        "year": year.astype("Int64").array,
        "genres": pd.Series([[g for g in gs if g not in _NO_GENRES] for gs in genres],
                            dtype=object).to_numpy(),
    })
    items["tags"] = pd.Series([[] for _ in range(len(items))], dtype=object)
    items["overview"] = pd.Series([None] * len(items), dtype=object)
    return items.sort_values("item_id", kind="stable").reset_index(drop=True)[list(ITEM_COLUMNS)]


def _tag_events(raw: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """The canonical tag events: normalised tags of known items, empty tags dropped."""
    tag = raw["tag"].fillna("").astype(str).str.strip().str.lower()
    keep = (tag != "") & raw["item_id"].isin(items["item_id"])
    out = pd.DataFrame({"user_id": raw["user_id"], "item_id": raw["item_id"], "tag": tag,
                        "timestamp": raw["timestamp"]})[keep]
    return out.reset_index(drop=True)[list(TAG_COLUMNS)]


_Tables = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None,
                pd.DataFrame | None]
"""ratings, items, users, links, tags (None where the release has no such file)."""


def _read_csv_release(src: _Source) -> _Tables:
    ratings = _read_table(src, "ratings.csv", {
        "userId": "int64", "movieId": "int64", "rating": "float32", "timestamp": "int64"})
    movies = _read_table(src, "movies.csv", {"movieId": "int64", "title": "str", "genres": "str"})
    genres = movies["genres"].fillna("").astype(str).str.split("|").tolist()
    items = _items_frame(movies["movieId"], movies["title"], genres,
                         src.label("movies.csv"), True)
    tags = None
    if "tags.csv" in src.files:
        raw = _read_table(src, "tags.csv", {"userId": "int64", "movieId": "int64", "tag": "str",
                                            "timestamp": "int64"})
        raw.columns = ["user_id", "item_id", "tag", "timestamp"]
        tags = _tag_events(raw, items)
    links = None
    if "links.csv" in src.files:
        raw = _read_table(src, "links.csv", {"movieId": "int64", "imdbId": "Int64",
                                             "tmdbId": "Int64"})
        raw.columns = ["item_id", "imdb_id", "tmdb_id"]
        links = raw[raw["item_id"].isin(items["item_id"])].reset_index(drop=True)
    ratings.columns = ["user_id", "item_id", "rating", "timestamp"]
    return ratings, items, None, links, tags


def _read_ml1m(src: _Source) -> _Tables:
    ratings = _read_table(src, "ratings.dat", {
        "user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"},
        names=["user_id", "item_id", "rating", "timestamp"], sep="::", encoding="latin-1")
    movies = _read_table(src, "movies.dat", {"item_id": "int64", "title": "str", "genres": "str"},
                         names=["item_id", "title", "genres"], sep="::", encoding="latin-1")
    genres = movies["genres"].fillna("").astype(str).str.split("|").tolist()
    items = _items_frame(movies["item_id"], movies["title"], genres,
                         src.label("movies.dat"), False)
    users = _read_table(src, "users.dat", {
        "user_id": "int64", "gender": "str", "age": "int64", "occupation": "int64"},
        names=["user_id", "gender", "age", "occupation", "zip"], sep="::", encoding="latin-1")
    _check(~users["occupation"].isin(list(ML1M_OCCUPATIONS)), src.label("users.dat"), False,
           lambda i: f"occupation code {users['occupation'].iloc[i]} is not one of 0..20")
    users["occupation"] = users["occupation"].map(ML1M_OCCUPATIONS).astype(str)
    return ratings, items, users, None, None


def _read_ml100k(src: _Source) -> _Tables:
    ratings = _read_table(src, "u.data", {
        "user_id": "int64", "item_id": "int64", "rating": "float32", "timestamp": "int64"},
        names=["user_id", "item_id", "rating", "timestamp"], sep="\t")
    genre_names = list(ML100K_GENRES)
    if "u.genre" in src.files:
        with src.open("u.genre") as fh:
            lines = fh.read().decode("latin-1").splitlines()
        genre_names = [ln.rsplit("|", 1)[0] for ln in lines if ln.strip()]
    flags = [f"g{i}" for i in range(len(genre_names))]
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *flags]
    movies = _read_table(src, "u.item", {
        "item_id": "int64", "title": "str", "release_date": "str", **dict.fromkeys(flags, "int8")},
        names=names, sep="|", encoding="latin-1")
    on = movies[flags].to_numpy() != 0
    genres = [[genre_names[j] for j in np.flatnonzero(row)] for row in on]
    items = _items_frame(movies["item_id"], movies["title"], genres, src.label("u.item"),
                         False, year_fallback=movies["release_date"])
    users = _read_table(src, "u.user", {
        "user_id": "int64", "age": "int64", "gender": "str", "occupation": "str"},
        names=["user_id", "age", "gender", "occupation", "zip"], sep="|", encoding="latin-1")
    return ratings, items, users, None, None


def _release_name(src: _Source, n_ratings: int) -> str:
    for text in (src.path.name, src.inner):
        match = _NAME_RE.search(text)
        if match:
            return "ml-" + match[1].lower()
    if src.fmt != "csv":
        return src.fmt
    return "ml-latest-small" if n_ratings <= 1_000_000 else "ml-latest"


def load_movielens(path: str | Path, item_text: str | Path | None = None, *,
                   min_rating: float | None = None) -> Dataset:
    """Load a MovieLens release from its folder or ``.zip`` into the canonical form.

    Args:
        path: A release folder or zip (``data/ml-latest-small.zip``, ``ml-1m/``, ...). The
            layout (CSV, ml-1m ``.dat`` or ml-100k ``u.*``) is detected from the files.
        item_text: Optional CSV of item overviews, joined through ``links`` by
            :func:`training.data.enrich.enrich_with_text`.
        min_rating: Keep only ratings at or above this value (``None`` keeps all).

    Returns:
        The dataset; ``info`` holds ``format``, ``duplicates_dropped`` and, when filtered,
        ``ratings_below_min_dropped``.

    Raises:
        DataError: A file or column is missing, a value does not parse, a rating is off the
            scale, a rating names an unknown item or user, or no ratings remain.
    """
    path = Path(path)
    src = _Source(path)
    reader = {"csv": _read_csv_release, "ml-1m": _read_ml1m, "ml-100k": _read_ml100k}[src.fmt]
    try:
        ratings, items, users, links, tags = reader(src)
        sha256 = src.sha256()
    finally:
        src.close()
    rfile, mfile, ufile = _LAYOUT[src.fmt][:3]
    rlabel, header = src.label(rfile), src.fmt == "csv"
    if ratings.empty:
        raise DataError("has no ratings; expected one rating per line", path=rlabel)
    lo, step = (0.5, 0.5) if header else (1.0, 1.0)
    rating = ratings["rating"]
    _check(rating.isna(), rlabel, header, lambda i: "rating is empty")
    _check((rating < lo) | (rating > 5.0) | ((rating / step) % 1 != 0), rlabel, header,
           lambda i: f"rating {float(rating.iloc[i]):g} is off the {lo:g}..5.0 scale "
                     f"(steps of {step:g})")
    _check(~ratings["item_id"].isin(items["item_id"]), rlabel, header,
           lambda i: f"item id {ratings['item_id'].iloc[i]} is not in {mfile} (unknown item)")
    if users is not None:
        _check(~ratings["user_id"].isin(users["user_id"]), rlabel, header,
               lambda i: f"user id {ratings['user_id'].iloc[i]} is not in {ufile} (unknown user)")
    ratings, n_dup = keep_latest_pairs(ratings)
    info: dict[str, object] = {"format": src.fmt, "duplicates_dropped": n_dup}
    if n_dup:
        log.warning("%s: dropped %d duplicate (user, item) ratings, kept the latest", rlabel, n_dup)
    name = _release_name(src, len(ratings))
    if min_rating is not None:
        kept = ratings["rating"] >= min_rating
        info.update(min_rating=float(min_rating), ratings_below_min_dropped=int((~kept).sum()))
        ratings = ratings[kept].reset_index(drop=True)
        if ratings.empty:
            raise DataError(f"no ratings are >= min_rating={min_rating}; lower min_rating",
                            path=rlabel)
    seen = np.sort(ratings["user_id"].unique())
    if users is None:
        users = pd.DataFrame({"user_id": seen.astype("int64")})
    else:
        users = users[users["user_id"].isin(seen)].sort_values("user_id")
        users = pd.DataFrame({"user_id": users["user_id"].astype("int64").to_numpy(),
                              "gender": users["gender"].astype(str).to_numpy(),
                              "age": users["age"].astype("Int64").array,
                              "occupation": users["occupation"].astype(str).to_numpy()})
    ds = Dataset(name=name, interactions=ratings, items=items, users=users, links=links, tags=tags,
                 source_sha256=sha256, source_path=str(path), info=info)
    log.info("loaded %s from %s: %d ratings, %d users, %d items", name, path, len(ratings),
             len(users), len(items))
    if item_text is not None:
        from training.data.enrich import enrich_with_text

        ds = enrich_with_text(ds, item_text)
    return ds
