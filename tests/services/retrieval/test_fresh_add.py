"""Adding an item when Redis does not answer: a 503 the caller can retry, never a 500.

Found by schema fuzzing on a loaded machine: the store's ``RedisUnavailable`` escaped the
route. The engine here is a stand-in with the few parts ``fresh.add`` reads (a real
catalogue and a real store whose Redis is a closed port); BERT and the tower are stubs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from harness.processes import free_port
from services.retrieval import fresh
from services.retrieval.engine import RetrievalEngine
from shared.contracts.errors import DependencyUnavailableError
from shared.contracts.public_v1 import NewItem
from shared.model.catalogue import Catalogue
from shared.stores.fresh_items import FreshItemStore
from shared.stores.redis_conn import RedisGuard


class _Text:
    def encode(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 4), np.float32)


class _Tower:
    def encode_new_items(self, *args: Any) -> np.ndarray:
        return np.ones((1, 2), np.float32)


def test_redis_down_while_adding_an_item_is_a_503(tmp_path: Path) -> None:
    catalogue = Catalogue.from_frame(pd.DataFrame({
        "item_id": ["sku-1"], "title": ["A"], "year": [None], "genres": [[]], "tags": [[]],
        "overview": [None],
    }))

    async def main() -> None:
        guard = RedisGuard(f"redis://127.0.0.1:{free_port()}/0", cooldown_s=0.1)

        async def text_encoder() -> _Text:
            return _Text()

        engine = SimpleNamespace(
            text_encoder=text_encoder, candidate_tower=_Tower(),
            encoder=SimpleNamespace(genres_and_years=lambda g, y, a: (g, y)),
            catalogue=catalogue, fresh_store=FreshItemStore(guard, tmp_path),
        )
        try:
            with pytest.raises(DependencyUnavailableError) as info:
                await fresh.add(cast(RetrievalEngine, engine), NewItem(title="B", item_id="b"))
        finally:
            await guard.close()
        assert info.value.http_status == 503 and "retry" in info.value.message

    asyncio.run(main())
