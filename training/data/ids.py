"""The one place string ids become the integer ids training's code works with, and back.

Files, the bundle, the services and the API identify users and items by string ids
(:mod:`shared.contracts.ids`). Training's tables and models index them by int64, so the
generic reader maps ids here, once, at the boundary, and keeps the map on the
:class:`Dataset` (``id_maps``); the bundle export (:mod:`training.bundle_export`) maps them
back, so a bundle carries the dataset's own ids:

* ``numeric``: every id is a plain decimal integer (``"1"``, ``"296"``; no sign, no leading
  zero, at most 18 digits): the integer is the id, so MovieLens ids keep their numbers;
* ``dense``: otherwise every distinct id gets 1, 2, ... in sorted (code point) order.

MovieLens readers make int64 ids directly (``id_maps`` None): their map is ``numeric``.
Feedback events and run-time items folded into a run (:mod:`training.feedback_events`,
:mod:`training.fresh_items`) may name ids the map has not seen: :meth:`IdMap.extended`
gives new users and items the next dense numbers; a ``numeric`` map takes only decimal ids.
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
        strings: The distinct string ids, id ``i`` at position ``i - 1`` (dense maps only;
            empty for numeric): sorted when built, new ids appended by :meth:`extended`.
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

    def to_str(self, ints: pd.Series | np.ndarray | list[int]) -> np.ndarray:
        """The string ids (an object array of ``str``) of int64 ids."""
        arr = np.asarray(ints, dtype=np.int64)
        if self.kind == "numeric":
            return arr.astype(str).astype(object)
        return np.asarray(self.strings, dtype=object)[arr - 1]

    def known(self, ids: pd.Series | np.ndarray) -> np.ndarray:
        """[n] bool: which string ids the map can turn into ints."""
        arr = arrow(ids)
        if self.kind == "numeric":
            ok = pc.match_substring_regex(arr, NUMERIC_ID)
        else:
            ok = pc.is_in(arr, value_set=arrow(self.strings))
        return np.asarray(pc.fill_null(ok, False), dtype=bool)

    def extended(self, ids: pd.Series | np.ndarray) -> IdMap:
        """This map, plus the given ids it does not know (dense maps only: each new id
        gets the next number, so the ints of known ids do not change; a numeric map is
        returned as it is: only decimal ids belong to it)."""
        if self.kind == "numeric" or not len(ids):
            return self
        new = pd.unique(np.asarray(ids, dtype=object)[~self.known(ids)])
        if not len(new):
            return self
        return IdMap("dense", np.concatenate([np.asarray(self.strings, dtype=object),
                                              np.asarray(new, dtype=object)]))


NUMERIC_MAP = IdMap("numeric", np.array([], dtype=object))
"""The map of integer ids that are their own numbers (MovieLens)."""


def dataset_id_map(id_maps: dict[str, IdMap] | None, kind: Literal["users", "items"]) -> IdMap:
    """A dataset's map for ``kind`` (:data:`NUMERIC_MAP` when it has none)."""
    return (id_maps or {}).get(kind, NUMERIC_MAP)


def build_id_map(*columns: pd.Series | np.ndarray) -> IdMap:
    """The map for every id appearing in ``columns`` (see the module docstring)."""
    values = pc.unique(pa.chunked_array([arrow(c) for c in columns], type=pa.large_string()))
    numeric = pc.match_substring_regex(values, NUMERIC_ID)
    if bool(pc.all(numeric).as_py() if len(values) else True):
        return NUMERIC_MAP
    ordered = pc.take(values, pc.sort_indices(values))
    return IdMap("dense", np.asarray(ordered.to_pylist(), dtype=object))
