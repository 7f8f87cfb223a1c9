"""History updates that could not reach retrieval yet, retried until they do.

A feedback event is stored durably (stream or spool) before its 202; the user's
recent history in retrieval is a cache built from those events. When that cache
cannot be written (retrieval down, or its Redis down: retrieval answers 503), or the
event was spooled while Redis was down, the update waits here and the gateway's
background loop retries it. Per user, items keep their arrival order; a user with
updates waiting gets later events queued behind them, so the history never ends up
out of order. The buffer is bounded: past ``max_users`` the user waiting longest is
dropped with a warning (the events themselves stay in the stream).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from shared.contracts.errors import DependencyUnavailableError, NotFoundError
from shared.contracts.ids import is_valid_id
from shared.contracts.internal_v1 import HistoryUpdate
from shared.contracts.public_v1 import MAX_IDS
from shared.serving.clients import RetrievalClient

log = logging.getLogger("hybridrec.gateway")


class PendingHistory:
    """Per-user history updates waiting for retrieval, oldest user first."""

    def __init__(self, max_users: int = 10_000) -> None:
        self.max_users = max_users
        self._pending: OrderedDict[str, list[str]] = OrderedDict()
        self.dropped_users = 0
        self._lock = asyncio.Lock()  # one delivery at a time keeps each user's order
        self._inflight: str | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, user_id: object) -> bool:
        """True while the user has items waiting or being delivered."""
        return user_id in self._pending or user_id == self._inflight

    def add(self, user_id: str, item_ids: list[str]) -> None:
        """Queue item ids for a user, in event order (only the last MAX_IDS are kept)."""
        if not item_ids:
            return
        queued = self._pending.setdefault(user_id, [])
        queued.extend(item_ids)
        del queued[: max(0, len(queued) - MAX_IDS)]
        while len(self._pending) > self.max_users:
            user, _ = self._pending.popitem(last=False)
            self.dropped_users += 1
            log.warning(
                "history update of user %d dropped: more than %d users waiting",
                user,
                self.max_users,
            )

    def add_events(self, events: list[dict[str, Any]], positive_rating: float) -> None:
        """Queue the positive events among flushed spool events (malformed ones are skipped)."""
        for ev in events:
            try:
                user, item = str(ev["user_id"]), str(ev["item_id"])
                if not (is_valid_id(user) and is_valid_id(item)):
                    continue
                rating = float(ev["rating"]) if ev.get("rating") not in (None, "") else None
            except (KeyError, TypeError, ValueError):
                continue
            if ev.get("type") == "rating" and (rating is None or rating < positive_rating):
                continue
            self.add(user, [item])

    async def deliver_user(
        self,
        retrieval: RetrievalClient,
        user_id: str,
        timeout_s: float,
        request_id: str | None = None,
    ) -> bool:
        """Send one user's waiting items to retrieval; True when stored (or not retryable)."""
        async with self._lock:
            items = self._pending.pop(user_id, None)
            if not items:
                return True
            self._inflight = user_id
            try:
                await retrieval.push_history(
                    user_id, HistoryUpdate(item_ids=items), timeout_s=timeout_s,
                    request_id=request_id,
                )
            except DependencyUnavailableError:
                self._restore(user_id, items)  # kept, in front, for the next try
                return False
            except NotFoundError as exc:  # an item left the catalogue: retrying cannot help
                log.warning("history of user %r not updated: %s", user_id, exc)
            except BaseException:  # cancelled: nothing is lost
                self._restore(user_id, items)
                raise
            finally:
                self._inflight = None
            return True

    def _restore(self, user_id: str, items: list[str]) -> None:
        """Put undelivered items back first in line, before any that arrived meanwhile."""
        merged = items + self._pending.get(user_id, [])
        self._pending[user_id] = merged[-MAX_IDS:]
        self._pending.move_to_end(user_id, last=False)

    async def deliver(self, retrieval: RetrievalClient, timeout_s: float) -> list[str]:
        """Try every waiting user once, oldest first; returns the users updated.

        Stops at the first user retrieval cannot take (it is down: the rest would fail too).
        """
        done = []
        for user in list(self._pending):
            if not await self.deliver_user(retrieval, user, timeout_s):
                break
            done.append(user)
        return done
