"""A fresh stack: ready means warm, a cold burst is served, exclude_seen excludes all.

One stack of real processes (real Redis under a prefix of its own, so the result cache
starts empty), used in file order:

1. the first requests after every service said ready are not degraded (ready = warm);
2. a burst of concurrent computed requests against the cold caches: every answer is a
   200 (the excess may be shed as ``degraded: ["overload"]``), no 5xx, no timeout;
3. ``exclude_seen`` for a user whose history is longer than every internal cap (the 200
   items users.parquet keeps, the 50 of the Redis recent list), with more than 50
   events sent: none of their training items nor event items comes back.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import redis

from harness.processes import ServiceProcess, running_stack

pytestmark = pytest.mark.slow

BURST = 200
N_EVENTS = 60  # > HYBRIDREC_MAX_HISTORY (50): the recent list drops some


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"hrcold-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def stack(
    small_bundle: Path, redis_url: str, prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    with running_stack(
        small_bundle,
        tmp_path_factory.mktemp("cold-start"),
        redis_url=redis_url,
        prefix=prefix,
        HYBRIDREC_MAX_HISTORY="50",
    ) as procs:
        yield procs


@pytest.fixture(scope="module")
def ratings(small_bundle: Path) -> pd.DataFrame:
    return pd.read_csv(small_bundle.parent / "data" / "ml-latest-small" / "ratings.csv")


@pytest.fixture(scope="module")
def users(small_bundle: Path) -> pd.DataFrame:
    return pd.read_parquet(small_bundle / "latest" / "users.parquet")


def test_first_requests_after_ready_are_not_degraded(
    stack: dict[str, ServiceProcess], users: pd.DataFrame
) -> None:
    gw = stack["gateway"].url
    uid = str(users.user_id.iat[3])
    first = httpx.get(f"{gw}/v1/users/{uid}/recommendations", params={"k": 10}, timeout=30)
    hist = [str(i) for i in users.history.iat[5][-3:]]
    anon = httpx.post(
        f"{gw}/v1/recommendations", json={"recent_item_ids": hist, "explain": True}, timeout=30
    )
    similar = [
        httpx.get(f"{gw}/v1/items/{hist[0]}/similar", params={"mode": m}, timeout=30)
        for m in ("content", "collaborative")
    ]
    for r in (first, anon, *similar):
        assert r.status_code == 200, r.text
    assert first.json()["degraded"] == [], first.text
    assert len(first.json()["items"]) == 10
    assert anon.json()["degraded"] == [], anon.text
    assert all(len(r.json()["items"]) == 10 for r in similar)
    ready = httpx.get(f"{gw}/health/ready", timeout=10).json()
    assert ready["checks"]["warm_up"] == "ok", ready
    for name, proc in stack.items():  # each service logged how long its warm-up took
        assert f"{name} warm-up:" in proc.tail(200_000), name


def _burst_request(client: httpx.Client, j: int, user_ids: list[int], items: list[int]) -> Any:
    """Known users in turn (each once), then anonymous sessions: none in the result cache."""
    if j < len(user_ids):
        return client.get(f"/v1/users/{user_ids[j]}/recommendations", params={"k": 10})
    start = (j * 7) % max(len(items) - 3, 1)
    return client.post("/v1/recommendations", json={"recent_item_ids": items[start : start + 3]})


def test_cold_burst_is_served_without_errors(
    stack: dict[str, ServiceProcess], users: pd.DataFrame
) -> None:
    user_ids = [str(u) for u in users.user_id.iloc[10:]]  # not asked for before
    items = sorted({int(i) for h in users.history for i in h})
    outcomes: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    with (
        httpx.Client(base_url=stack["gateway"].url, timeout=30, limits=limits) as client,
        ThreadPoolExecutor(BURST) as pool,
    ):
        futures = [
            pool.submit(_burst_request, client, j, user_ids, items) for j in range(BURST)
        ]
        for f in futures:
            try:
                r = f.result()
            except httpx.TimeoutException as exc:
                outcomes[f"timeout {type(exc).__name__}"] += 1
                continue
            if r.status_code != 200:
                outcomes[f"status {r.status_code}"] += 1
                continue
            body = r.json()
            assert len(body["items"]) == 10, body
            outcomes["+".join(body["degraded"]) or "computed"] += 1
    print(f"cold burst of {BURST}: {dict(outcomes)}")
    assert sum(outcomes.values()) == BURST
    # Every answer is a 200: computed, or shed at once as overload; nothing queued into
    # a timeout (which would show as degraded retrieval/ranking, a 5xx or a client timeout).
    assert set(outcomes) <= {"computed", "overload"}, dict(outcomes)
    assert outcomes["computed"] > 0, dict(outcomes)


def test_exclude_seen_excludes_training_history_and_events_past_every_cap(
    stack: dict[str, ServiceProcess],
    ratings: pd.DataFrame,
    users: pd.DataFrame,
    redis_url: str,
    prefix: str,
) -> None:
    catalogue = set(ratings.movieId.astype(int))
    seen = {int(u): set(g.movieId.astype(int)) for u, g in ratings.groupby("userId")}
    # a user beyond the 200-item recent history, with enough unseen items for 60 events
    uid = max(
        (u for u in seen if len(catalogue - seen[u]) >= N_EVENTS + 20),
        key=lambda u: len(seen[u]),
    )
    training = seen[uid]
    assert len(training) > 250, len(training)
    row = users.set_index("user_id").loc[str(uid)]  # ids are strings in the bundle
    assert len(row.history) == 200 < len(training)  # the bundle's recent window is capped
    events = sorted(catalogue - training)[:N_EVENTS]
    gw = stack["gateway"].url
    with httpx.Client(base_url=gw, timeout=30) as client:
        for item in events:
            r = client.post(f"/v1/users/{uid}/events", json={"item_id": item, "type": "view"})
            assert r.status_code == 202 and r.json()["degraded"] == [], r.text
        r = client.get(
            f"/v1/users/{uid}/recommendations",
            params={"k": 50, "exclude_seen": "true"},
            headers={"Cache-Control": "no-cache"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["degraded"] == [], body
        got = {int(it["item_id"]) for it in body["items"]}  # MovieLens ids: decimal text
        assert got, "the user still has unseen items"
        assert not got & training, sorted(got & training)
        assert not got & set(events), sorted(got & set(events))
        assert got <= catalogue - training - set(events)
        kept = client.get(
            f"/v1/users/{uid}/recommendations",
            params={"k": 50, "exclude_seen": "false"},
            headers={"Cache-Control": "no-cache"},
        ).json()
        assert {int(it["item_id"]) for it in kept["items"]} & (training | set(events))
    r_client = redis.Redis.from_url(redis_url)
    try:  # the caps were passed: the recent list holds 50, the seen set all 60
        assert r_client.llen(f"{prefix}:hist:{uid}") == 50
        assert r_client.scard(f"{prefix}:seen:{uid}") == N_EVENTS
    finally:
        r_client.close()
