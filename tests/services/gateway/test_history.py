"""The gateway's queue of history updates that retrieval could not take yet.

The end-to-end cases (retrieval stopped, Redis stopped) run against real processes in
test_degradation.py and test_faults.py; these cover the queue's own rules (order,
retry, bound, malformed spool lines) against a recording stand-in for the HTTP client.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from services.gateway.history import PendingHistory
from shared.contracts.errors import DependencyUnavailableError, NotFoundError
from shared.contracts.internal_v1 import HistoryUpdate
from shared.contracts.public_v1 import MAX_IDS
from shared.serving.clients import RetrievalClient


class _Retrieval:
    """Records history posts; ``down`` makes them fail like an unreachable service."""

    def __init__(self) -> None:
        self.down = False
        self.unknown: set[int] = set()
        self.posts: list[tuple[int, list[int]]] = []

    async def push_history(self, user: int, req: HistoryUpdate, **kw: Any) -> None:
        items = [int(i) for i in req.item_ids]  # ids are text on the wire; numbers here
        await asyncio.sleep(0)
        if self.down:
            raise DependencyUnavailableError("retrieval is down")
        if self.unknown & set(items):
            raise NotFoundError("unknown item")
        self.posts.append((user, items))


def _client(r: _Retrieval) -> RetrievalClient:
    return cast(RetrievalClient, r)


def test_updates_wait_while_retrieval_is_down_then_arrive_in_order() -> None:
    async def scenario() -> None:
        r, q = _Retrieval(), PendingHistory()
        r.down = True
        q.add(7, [1, 2])
        assert not await q.deliver_user(_client(r), 7, 1.0)
        q.add(7, [3])  # a later event queues behind the waiting ones
        q.add(8, [9])
        assert 7 in q and 8 in q and await q.deliver(_client(r), 1.0) == []
        r.down = False
        assert await q.deliver(_client(r), 1.0) == [7, 8]
        assert r.posts == [(7, [1, 2, 3]), (8, [9])] and len(q) == 0

    asyncio.run(scenario())


def test_failed_delivery_keeps_items_ahead_of_ones_added_meanwhile() -> None:
    async def scenario() -> None:
        r, q = _Retrieval(), PendingHistory()
        q.add(5, [1])
        r.down = True
        task = asyncio.create_task(q.deliver_user(_client(r), 5, 1.0))
        await asyncio.sleep(0)  # the post is in flight
        assert 5 in q
        q.add(5, [2])
        assert not await task
        r.down = False
        assert await q.deliver_user(_client(r), 5, 1.0)
        assert r.posts == [(5, [1, 2])]

    asyncio.run(scenario())


def test_unknown_item_is_dropped_not_retried_forever() -> None:
    async def scenario() -> None:
        r, q = _Retrieval(), PendingHistory()
        r.unknown = {4}
        q.add(1, [4])
        q.add(2, [5])
        assert await q.deliver(_client(r), 1.0) == [1, 2]
        assert r.posts == [(2, [5])] and len(q) == 0

    asyncio.run(scenario())


def test_bounded_per_user_and_in_users() -> None:
    q = PendingHistory(max_users=2)
    q.add(1, list(range(MAX_IDS + 5)))
    q.add(2, [1])
    q.add(3, [1])  # the user waiting longest (1) is dropped
    assert 1 not in q and 2 in q and 3 in q and q.dropped_users == 1
    q2 = PendingHistory()
    q2.add(1, list(range(MAX_IDS + 5)))

    async def scenario() -> list[tuple[int, list[int]]]:
        r = _Retrieval()
        await q2.deliver(_client(r), 1.0)
        return r.posts

    assert asyncio.run(scenario()) == [(1, list(range(5, MAX_IDS + 5)))]


def test_spool_events_positive_only_and_malformed_skipped() -> None:
    q = PendingHistory()
    q.add_events(
        [
            {"user_id": "1", "item_id": "10", "type": "click", "rating": ""},
            {"user_id": "1", "item_id": "11", "type": "rating", "rating": "2.0"},
            {"user_id": "1", "item_id": "12", "type": "rating", "rating": "4.5"},
            {"user_id": "x y", "item_id": "13", "type": "view"},  # not an id
            {"user_id": "1", "item_id": "{13}", "type": "view"},  # not an id
            {"item_id": "14", "type": "view"},
            {"user_id": "2", "item_id": "15", "type": "view", "rating": None},
        ],
        positive_rating=3.5,
    )

    async def scenario() -> list[tuple[int, list[int]]]:
        r = _Retrieval()
        assert await q.deliver(_client(r), 1.0) == ["1", "2"]
        return r.posts

    assert asyncio.run(scenario()) == [("1", [10, 12]), ("2", [15])]
