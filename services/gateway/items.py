"""The gateway's item operations: similar items, lookup, title search and new items.

Each is one typed call to retrieval (:class:`~shared.serving.clients.RetrievalClient`);
the gateway adds its request id and, after a new item, forgets the cached answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from shared.contracts.filters import ItemFilter
from shared.contracts.items_v1 import ItemPatch
from shared.contracts.public_v1 import ItemDetail, ItemList, NewItem, SimilarItems
from shared.serving.clients import RetrievalClient

#: Embedding a new item's text with BERT can take far longer than a lookup.
ADD_ITEM_TIMEOUT_S = 30.0


class ItemOps:
    """Item calls through retrieval, within the gateway's retrieval timeout."""

    def __init__(
        self,
        retrieval: RetrievalClient,
        timeout_s: float,
        catalogue_changed: Callable[[], Awaitable[None]],
    ) -> None:
        self.retrieval = retrieval
        self.timeout_s = timeout_s
        self._catalogue_changed = catalogue_changed

    async def similar(
        self,
        item_id: str,
        *,
        k: int,
        mode: str,
        request_id: str | None,
        flt: ItemFilter | None = None,
        genres: list[str] | None = None,
    ) -> SimilarItems:
        """Content (BERT) or collaborative (item-tower) neighbours of an item (filtered)."""
        found = await self.retrieval.similar(
            item_id, k=k, mode=mode, timeout_s=self.timeout_s, request_id=request_id,
            filter=flt, genres=genres,
        )
        return found.model_copy(update={"request_id": request_id})

    async def item(self, item_id: str, *, request_id: str | None) -> ItemDetail:
        """One item's metadata (404 when the catalogue has no such item)."""
        return await self.retrieval.item(item_id, timeout_s=self.timeout_s, request_id=request_id)

    async def search(self, q: str, *, limit: int, request_id: str | None) -> ItemList:
        """Items whose title matches the words of ``q``, best first."""
        found = await self.retrieval.search(
            q, limit=limit, timeout_s=self.timeout_s, request_id=request_id
        )
        return found.model_copy(update={"request_id": request_id})

    async def patch(
        self, item_id: str, patch: ItemPatch, *, request_id: str | None
    ) -> ItemDetail:
        """Change an item's attributes or availability; cached answers are dropped."""
        changed = await self.retrieval.patch_item(
            item_id, patch, timeout_s=self.timeout_s, request_id=request_id
        )
        await self._catalogue_changed()
        return changed

    async def add(
        self, item: NewItem, *, request_id: str | None, notify: bool = True
    ) -> ItemDetail:
        """Embed and add a new item; cached answers are dropped so it can be recommended."""
        created = await self.retrieval.add_item(
            item,
            timeout_s=max(self.timeout_s, ADD_ITEM_TIMEOUT_S),
            request_id=request_id,
        )
        if notify:  # a batch says it once, after its last row
            await self._catalogue_changed()
        return created
