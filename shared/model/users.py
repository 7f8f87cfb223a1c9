"""The bundle's known users: user id -> row position in ``users.parquet``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.model.catalogue import id_array


class UserIndex:
    """Positions of the bundle's users, by binary search over their sorted (string) ids."""

    def __init__(self, user_ids: Sequence[str] | np.ndarray) -> None:
        ids = id_array(user_ids)
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]

    def __len__(self) -> int:
        return len(self._sorted)

    def position(self, user_id: str | None) -> int:
        """Row of a known user; -1 for an anonymous (None) or unknown one."""
        if user_id is None or not len(self._sorted):
            return -1
        uid = str(user_id)
        at = int(np.searchsorted(self._sorted, uid))
        if at < len(self._sorted) and self._sorted[at] == uid:
            return int(self._order[at])
        return -1
