"""The one place string ids become the integer ids today's training code needs.

Files and :class:`training.data.validate.CanonicalTables` hold ids as strings. The models,
the bundle and the services still index users and items by int64, so the generic reader maps
ids here, once, at the boundary, and keeps the map on the :class:`Dataset` (``id_maps``):

* ``numeric``: every id is a plain decimal integer (``"1"``, ``"296"``; no sign, no leading
  zero, at most 18 digits): the integer is the id, so MovieLens ids keep their numbers;
* ``dense``: otherwise every distinct id gets 1, 2, ... in sorted (code point) order.

When ids become strings end to end, this module and ``Dataset.id_maps`` are what to remove.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shared.contracts.errors import DataError
from training.data.columns import arrow

NUMERIC_ID = r"^(0|[1-9][0-9]{0,17})$"
"""A string id that is its own integer."""


@dataclass(frozen=True)
class IdMap:
    """String id <-> int64 id, for users or for items.

    Attributes:
        kind: ``numeric`` (the int is the id) or ``dense`` (the int is 1 + the rank of the
            id among ``strings``).
        strings: The sorted distinct string ids (dense maps only; empty for numeric).
    """

    kind: Literal["numeric", "dense"]
    strings: np.ndarray

    def to_int(self, ids: pd.Series | np.ndarray) -> np.ndarray:
        """The int64 ids of string ids that the map knows (DataError otherwise)."""
        arr = arrow(ids)
        if self.kind == "numeric":
            try:
                return np.asarray(pc.cast(arr, pa.int64()), dtype=np.int64)
            except pa.ArrowInvalid as exc:
                raise DataError(f"an id is not a decimal integer under a numeric id map: {exc}"
                                ) from exc
        pos = pc.index_in(arr, value_set=arrow(self.strings))
        if pos.null_count:
            missing = arr.filter(pc.is_null(pos)).to_pylist()[:5]
            raise DataError(f"ids {missing} are not in the id map")
        return np.asarray(pos, dtype=np.int64) + 1

    def to_str(self, ints: pd.Series | np.ndarray) -> np.ndarray:
        """The string ids of int64 ids."""
        arr = np.asarray(ints, dtype=np.int64)
        if self.kind == "numeric":
            return arr.astype(str).astype(object)
        return self.strings[arr - 1]


def build_id_map(*columns: pd.Series | np.ndarray) -> IdMap:
    """The map for every id appearing in ``columns`` (see the module docstring)."""
    values = pc.unique(pa.chunked_array([arrow(c) for c in columns], type=pa.large_string()))
    numeric = pc.match_substring_regex(values, NUMERIC_ID)
    if bool(pc.all(numeric).as_py() if len(values) else True):
        return IdMap("numeric", np.array([], dtype=object))
    ordered = pc.take(values, pc.sort_indices(values))
    return IdMap("dense", np.asarray(ordered.to_pylist(), dtype=object))
