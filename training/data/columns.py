"""Vectorised typing of raw columns: each parser returns the typed values and a bad-row mask.

Every function takes a column as read by :mod:`training.data.tables` (text from CSV, native
types from Parquet/JSON Lines) and never loops over rows in Python: pyarrow compute
(RE2 regular expressions, string kernels) and pandas' vectorised parsers do the work.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from training.data.schema import DOTS, EVENT_PATTERN, ID_PATTERN

STRING = pd.StringDtype("pyarrow")
NUMBER = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"
"""A decimal number as text (no ``inf``/``nan``)."""


def arrow(s: pd.Series | np.ndarray) -> pa.Array:
    """The values as one pyarrow ``large_string`` array (no copy for pyarrow-backed text)."""
    arr = pa.array(s) if isinstance(s, pd.Series) and isinstance(s.dtype, pd.StringDtype) \
        else pa.array(np.asarray(s, dtype=object), type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.large_string())


def text_to_float(text: pd.Series) -> np.ndarray:
    """Float64 of text cells that are decimal numbers, NaN elsewhere (pyarrow kernels)."""
    arr = arrow(text)
    ok = pc.fill_null(pc.match_substring_regex(arr, NUMBER), False)
    out = np.full(len(arr), np.nan)
    mask = np.asarray(ok, dtype=bool)
    if mask.any():
        out[mask] = np.asarray(pc.cast(arr.filter(ok), pa.float64()), dtype=np.float64)
    return out
TRUE_WORDS = ("true", "1", "yes", "y", "t")
FALSE_WORDS = ("false", "0", "no", "n", "f")


def as_text(s: pd.Series) -> pd.Series:
    """The column as pyarrow-backed text, ``""`` for missing values (integral floats as ints)."""
    if isinstance(s.dtype, pd.StringDtype):
        return s.fillna("").astype(STRING)
    missing = s.isna().to_numpy()
    if pd.api.types.is_float_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(vals) & (np.mod(vals, 1) == 0)
        out = s.astype(object)
        out[whole] = vals[whole].astype(np.int64)
        s = out
    text = s.astype(object).where(~missing, "").astype(str)
    return text.astype(STRING)


def parse_ids(s: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Ids as text; masks of empty ids and of ids outside the alphabet/length (or only dots)."""
    text = as_text(s)
    arr = arrow(text)
    empty = (text == "").to_numpy(dtype=bool)
    ok = pc.match_substring_regex(arr, f"^{ID_PATTERN}$")
    dots = pc.match_substring_regex(arr, f"^{DOTS}$")
    bad = ~np.asarray(ok, dtype=bool) | np.asarray(dots, dtype=bool)
    return text, empty, bad & ~empty


def parse_timestamps(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds since the epoch (int64), and masks of empty and unparsable values.

    Accepted: integers (seconds), numbers (floored), ISO 8601 text (``2024-05-01T12:00:00Z``,
    ``2024-05-01 12:00``, ``2024-05-01``; no zone means UTC), Parquet timestamps.
    """
    n = len(s)
    out = np.zeros(n, dtype=np.int64)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        missing = s.isna().to_numpy()
        utc = pd.to_datetime(s, utc=True)
        out[~missing] = _seconds(utc[~missing])
        return out, missing, np.zeros(n, dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(vals)
        bad = np.isinf(vals)
        good = ~missing & ~bad
        out[good] = np.floor(vals[good]).astype(np.int64)
        return out, missing, bad
    text = as_text(s).str.strip()
    missing = (text == "").to_numpy(dtype=bool)
    num = text_to_float(text)
    is_num = np.isfinite(num)
    out[is_num] = np.floor(num[is_num]).astype(np.int64)
    rest = ~is_num & ~missing
    bad = np.zeros(n, dtype=bool)
    if rest.any():
        parsed = pd.to_datetime(text[rest].astype(str), format="ISO8601", utc=True,
                                errors="coerce")
        ok = parsed.notna().to_numpy()
        secs = np.zeros(len(parsed), dtype=np.int64)
        secs[ok] = _seconds(parsed[ok])
        idx = np.flatnonzero(rest)
        out[idx[ok]] = secs[ok]
        bad[idx[~ok]] = True
    return out, missing, bad


def _unit_ns(values: pd.Series | pd.DatetimeIndex) -> int:
    """Nanoseconds per tick of a datetime64 column's unit."""
    unit = getattr(values.dtype, "unit", None) or np.datetime_data(values.dtype)[0]
    return {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[str(unit)]


def _seconds(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Whole seconds since the epoch of non-null datetimes."""
    ticks = np.asarray(values.astype("int64"), dtype=np.int64)
    return ticks // (10**9 // _unit_ns(values))


def parse_numbers(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 values (NaN when missing), and masks of missing and non-numeric/infinite values."""
    if pd.api.types.is_bool_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return vals, np.isnan(vals), np.zeros(len(s), dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
        return vals, np.isnan(vals), np.isinf(vals)
    text = as_text(s).str.strip()
    missing = (text == "").to_numpy(dtype=bool)
    vals = text_to_float(text)
    bad = (np.isnan(vals) & ~missing) | np.isinf(vals)
    vals[bad] = np.nan
    return vals, missing, bad


def parse_flags(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Booleans (missing means True), and the mask of values that are not a yes/no word."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.fillna(True).to_numpy(dtype=bool), np.zeros(len(s), dtype=bool)
    text = as_text(s).str.strip().str.lower()
    yes = text.isin(TRUE_WORDS).to_numpy(dtype=bool) | (text == "").to_numpy(dtype=bool)
    no = text.isin(FALSE_WORDS).to_numpy(dtype=bool)
    return yes, ~yes & ~no


def parse_events(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Event types as text (lower-cased, stripped), and the mask of malformed ones."""
    text = as_text(s).str.strip().str.lower()
    ok = pc.match_substring_regex(arrow(text), f"^{EVENT_PATTERN}$")
    return text, ~np.asarray(ok, dtype=bool)


def parse_lists(s: pd.Series, separator: str) -> pd.Series:
    """Lists of stripped non-empty strings: native lists, or text split on ``separator``."""
    arr: pa.Array | pa.ChunkedArray | None = None
    if s.dtype == object and len(s) and s.map(lambda v: isinstance(v, list | np.ndarray)).any():
        try:
            arr = pa.array(s.tolist(), type=pa.list_(pa.string()))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = None
    if arr is None:
        arr = pc.split_pattern(arrow(as_text(s)).cast(pa.string()), separator)
    arr = pc.fill_null(arr, pa.scalar([], type=pa.list_(pa.string())))
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    flat = pc.utf8_trim_whitespace(pc.list_flatten(arr))
    parents = np.asarray(pc.list_parent_indices(arr))
    keep = np.asarray(pc.not_equal(flat, ""), dtype=bool) & np.asarray(flat.is_valid())
    values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=object)[keep]
    counts = np.bincount(parents[keep], minlength=len(s))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rebuilt = pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()),
                                       pa.array(values, type=pa.string()))
    return pd.Series(rebuilt.to_pylist(), index=s.index, dtype=object)


def is_in(values: pd.Series | np.ndarray, pool: pd.Series | np.ndarray) -> np.ndarray:
    """Boolean mask: which ``values`` (text) appear in ``pool`` (hash lookup in pyarrow)."""
    arr = arrow(values)
    ref = pc.unique(arrow(pool))
    return np.asarray(pc.fill_null(pc.is_in(arr, value_set=ref), False), dtype=bool)


def codes(s: pd.Series) -> np.ndarray:
    """Int64 codes of the distinct values (pyarrow dictionary encoding), in first-seen order."""
    enc = pc.dictionary_encode(arrow(s))
    return np.asarray(enc.indices, dtype=np.int64)


def duplicated_rows(*keys: np.ndarray) -> np.ndarray:
    """Rows whose tuple of integer ``keys`` appeared in an earlier row (hashing ints)."""
    frame = pd.DataFrame({str(i): np.asarray(k, dtype=np.int64) for i, k in enumerate(keys)})
    return frame.duplicated().to_numpy(dtype=bool)
