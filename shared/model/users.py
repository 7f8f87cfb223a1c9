"""The bundle's known users: user id -> row position in ``users.parquet``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class UserIndex:
    """Positions of the bundle's users, by binary search over their sorted ids."""

    def __init__(self, user_ids: Sequence[int] | np.ndarray) -> None:
        ids = np.asarray(user_ids, dtype=np.int64)
        self._order = np.argsort(ids, kind="stable")
        self._sorted = ids[self._order]

    def __len__(self) -> int:
        return len(self._sorted)

    def position(self, user_id: int | None) -> int:
        """Row of a known user; -1 for an anonymous (None) or unknown one."""
        if user_id is None or not len(self._sorted):
            return -1
        at = int(np.searchsorted(self._sorted, user_id))
        if at < len(self._sorted) and self._sorted[at] == user_id:
            return int(self._order[at])
        return -1
