"""Reading table cells that may be missing or hold lists, whichever way they were stored.

Item tables arrive from CSV (lists ``|``-joined), Parquet (arrays) or JSON (lists); these
two functions are the one place that tells a missing cell and splits a list cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def is_missing(value: Any) -> bool:
    """True for None, NaN, ``pd.NA`` and ``pd.NaT``."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def list_cell(value: Any) -> list[str]:
    """Normalise a list-like cell (list, tuple, ndarray, '|'-joined string) to strings."""
    if is_missing(value):
        return []
    if isinstance(value, str):
        parts: Iterable[Any] = value.split("|")
    elif isinstance(value, Iterable):
        parts = value
    else:
        parts = [value]
    out = []
    for part in parts:
        if is_missing(part):
            continue
        text = " ".join(str(part).split())
        if text:
            out.append(text)
    return out
