"""Feedback events at the gateway: stored durably (Redis Stream or fsync'd spool) before the
202, then applied to the user's history in retrieval; spooled events are moved into the
stream and applied once Redis is back (:meth:`FeedbackOps.flush_spool_forever`)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from services.gateway.history import PendingHistory
from services.gateway.items import ItemOps
from services.gateway.result_cache import ResultCache
from shared.contracts.errors import DependencyUnavailableError, NotFoundError
from shared.contracts.events_v1 import NEGATIVE_EVENT_TYPES, EventAccepted, EventIn
from shared.contracts.ids import is_valid_id
from shared.contracts.internal_v1 import HistoryUpdate
from shared.contracts.public_v1 import Degraded
from shared.serving.clients import RetrievalClient
from shared.stores.events import EventLog

log = logging.getLogger("hybridrec.gateway")

#: A rating at least this high counts as liking the item (it joins the history).
POSITIVE_RATING = 3.5


class FeedbackOps:
    """Feedback events: validated, stored, then applied to the user's history."""

    def __init__(
        self,
        *,
        retrieval: RetrievalClient,
        events: EventLog,
        items: ItemOps,
        pending_history: PendingHistory,
        result_cache: ResultCache | None,
        retrieval_timeout_s: float,
    ) -> None:
        self.retrieval = retrieval
        self.events = events
        self.items = items
        self.pending_history = pending_history
        self.result_cache = result_cache
        self.timeout_s = retrieval_timeout_s

    async def record_event(
        self, user_id: str, event: EventIn, request_id: str | None
    ) -> EventAccepted:
        """Validate the item, store the event durably, then update the user's history."""
        degraded: list[Degraded] = []
        payload = {
            "user_id": user_id,
            "item_id": event.item_id,
            "type": event.type,
            "rating": event.rating,
            "timestamp": event.timestamp if event.timestamp is not None else int(time.time()),
        }
        update_ok = True
        try:
            await self.items.item(event.item_id, request_id=request_id)
        except NotFoundError:
            raise
        except DependencyUnavailableError:
            update_ok = False
            degraded.append("retrieval")
        event_id, spooled = await self.events.append(payload)
        if spooled:
            degraded.append("cache")
        negative = event.type in NEGATIVE_EVENT_TYPES
        positive = not negative and (
            event.type != "rating" or (event.rating or 0) >= POSITIVE_RATING
        )
        # A spooled event reaches the history when the spool is flushed (flush_once).
        if positive and not spooled:
            # Queued behind any earlier update of this user still waiting, then sent now.
            self.pending_history.add(user_id, [event.item_id])
            delivered = update_ok and await self.pending_history.deliver_user(
                self.retrieval, user_id, self.timeout_s, request_id
            )
            if not delivered and "retrieval" not in degraded:
                degraded.append("retrieval")
        elif (
            update_ok
            and not spooled
            and not await self._mark_seen(user_id, event.item_id, negative, request_id)
        ):
            degraded.append("retrieval")
        # After the history changed: the next recommendation is computed afresh.
        if self.result_cache is not None and not spooled:
            await self.result_cache.invalidate(user_id)
        return EventAccepted(
            event_id=event_id,
            user_id=user_id,
            item_id=event.item_id,
            degraded=degraded,
            request_id=request_id,
        )

    async def _mark_seen(
        self, user_id: str, item_id: str, hidden: bool, request_id: str | None
    ) -> bool:
        """A low rating: never recommend the item again (exclude_seen); a dislike or hide
        (``hidden``): never again, whatever exclude_seen. Best effort; the event itself is
        stored already and reaches the next training run either way."""
        try:
            await self.retrieval.push_history(
                user_id,
                HistoryUpdate(item_ids=[item_id], seen_only=True, hidden=hidden),
                timeout_s=self.timeout_s,
                request_id=request_id,
            )
        except DependencyUnavailableError:
            return False
        return True

    async def _hide_spooled(self, moved: list[dict[str, Any]]) -> None:
        """Spooled dislikes and hides reach retrieval's hidden sets once Redis is back (best
        effort: an item gone from the catalogue, or retrieval down, is logged and skipped)."""
        for ev in moved:
            user, item = str(ev.get("user_id", "")), str(ev.get("item_id", ""))
            if ev.get("type") not in NEGATIVE_EVENT_TYPES or not (
                is_valid_id(user) and is_valid_id(item)
            ):
                continue
            try:
                hidden = await self._mark_seen(user, item, True, None)
            except NotFoundError as exc:
                log.warning("hidden item of user %r not stored: %s", user, exc)
                continue
            if not hidden:
                log.warning("hidden item %r of user %r not stored: retrieval is down", item, user)
            elif self.result_cache is not None:
                await self.result_cache.invalidate(user)

    async def flush_spool_forever(self, every_s: float = 2.0) -> None:
        """Background task: move spooled events into Redis, then retry waiting history updates."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.flush_once()
            except Exception:  # a background loop must not die
                log.exception("flushing the event spool failed")

    async def flush_once(self) -> int:
        """Move the spool into the stream and deliver waiting history; returns users updated."""
        moved = await self.events.drain_spool()
        if moved:
            log.info("moved %d spooled events into the Redis stream", len(moved))
            self.pending_history.add_events(moved, POSITIVE_RATING)
            await self._hide_spooled(moved)
        users = await self.pending_history.deliver(self.retrieval, self.timeout_s)
        if self.result_cache is not None:
            for user in users:
                await self.result_cache.invalidate(user)
        return len(users)
