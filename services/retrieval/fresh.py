"""Items added at run time (``POST /v1/items``), held in memory beside the bundle's catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.model.catalogue import Catalogue
from shared.stores.fresh_items import decode_vector


@dataclass
class FreshItems:
    """Run-time items held in memory: ids, metadata and both vectors."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    content: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    records: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], skip: Catalogue) -> FreshItems:
        """Keep the records whose id is not in the bundle's catalogue already."""
        recs = [r for r in records if skip.positions([int(r["item_id"])])[0] < 0]
        if not recs:
            return cls()
        return cls(
            ids=np.asarray([int(r["item_id"]) for r in recs], np.int64),
            content=np.stack([decode_vector(r["content"]) for r in recs]),
            vectors=np.stack([decode_vector(r["vector"]) for r in recs]),
            records={int(r["item_id"]): r for r in recs},
        )
