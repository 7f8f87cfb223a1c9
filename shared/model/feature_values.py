"""Raw feature values in their canonical form, shared by the feature encoders.

Missing values (None, NaN, ``pd.NA``, ``pd.NaT``), a user feature's text form, genre lists
(a ``|``-separated string or a list, the "no genres" marker dropped), year buckets and the
user feature table :class:`shared.model.features.FeatureEncoder` is fitted with.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shared.contracts.errors import ConfigError

USER_FEATURE_NAMES = ("gender", "age", "occupation")
_NO_GENRES = {"(no genres listed)", ""}


def is_missing(value: Any) -> bool:
    """True for None, NaN, ``pd.NA`` and ``pd.NaT``."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(float(value))
    return type(value).__name__ in ("NAType", "NaTType")


def feature_value(value: Any) -> str | None:
    """Canonical string form of a user feature value (``25.0`` -> ``"25"``), None if missing."""
    if is_missing(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    text = str(value).strip()
    return text or None


def genre_list(value: Any) -> list[str]:
    """Genre names of a list or ``|``-separated string, without the "no genres" markers."""
    if value is None or isinstance(value, float):
        return []
    if isinstance(value, str):
        value = value.split("|")
    return [str(g) for g in value if str(g) not in _NO_GENRES]


def year_bucket(year: Any, year_min: int, size: int, n_buckets: int) -> int:
    """Year bucket in [1, n_buckets] (clipped), 0 for a missing year."""
    if is_missing(year):
        return 0
    return min(max((int(year) - year_min) // size + 1, 1), n_buckets)


def user_feature_table(users: Any, n_users: int) -> tuple[dict[str, list[str]], list[list[int]]]:
    """Vocabularies of the user features present, and each user's encoded values."""
    if users is None:
        return {}, []
    vocabs: dict[str, list[str]] = {}
    for name in (c for c in USER_FEATURE_NAMES if c in users.columns):
        vocab = sorted({v for v in map(feature_value, users[name]) if v is not None})
        if vocab:
            vocabs[name] = vocab
    if not vocabs:
        return {}, []
    if len(users) != n_users:
        raise ConfigError(
            f"users table has {len(users)} rows but there are {n_users} user ids; "
            "pass the users table aligned to user_idx"
        )
    index = {name: {v: j + 1 for j, v in enumerate(vocab)} for name, vocab in vocabs.items()}
    columns = [[index[name].get(feature_value(v) or "", 0) for v in users[name]] for name in vocabs]
    return vocabs, [list(row) for row in zip(*columns, strict=True)]
