"""``hybridrec serve combined``: all three services in one process answer as the split does.

The split (three processes) and the combined process run side by side on the same small
bundle and the same Redis (each under its own key prefix); every answer is computed
(``Cache-Control: no-cache``) and compared. The combined process runs two workers on
one port (``--workers 2``); an event must move the list whichever worker answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from harness.processes import running_stack, server_pids

pytestmark = pytest.mark.slow
NO_CACHE = {"Cache-Control": "no-cache"}
ADMIN_KEY = "combined-admin-key"


@pytest.fixture(scope="module")
def split(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    with running_stack(
        small_bundle, tmp_path_factory.mktemp("split"), redis_url=redis_url,
        prefix=f"hrsplit-{uuid.uuid4().hex[:8]}",
    ) as procs, httpx.Client(base_url=procs["gateway"].url, timeout=30) as client:  # fmt: skip
        yield client


@pytest.fixture(scope="module")
def combined(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    with running_stack(
        small_bundle, tmp_path_factory.mktemp("combined"), redis_url=redis_url,
        prefix=f"hrcomb-{uuid.uuid4().hex[:8]}", combined=True, serve=True, workers=2,
        HYBRIDREC_ADMIN_KEY=ADMIN_KEY,
    ) as procs, httpx.Client(base_url=procs["combined"].url, timeout=30) as client:  # fmt: skip
        assert list(procs) == ["combined"]
        workers = server_pids(procs["combined"].pid)
        assert len(workers) == 2, f"expected two uvicorn workers, found {workers}"
        # Ready as soon as one worker says so: a worker listens only once it is ready, so
        # fresh connections (either worker) all find a ready one.
        for _ in range(8):
            ready = httpx.get(f"{procs['combined'].url}/health/ready", timeout=10)
            assert ready.status_code == 200, ready.text
        yield client


@pytest.fixture(scope="module")
def users(small_bundle: Path) -> pd.DataFrame:
    return pd.read_parquet(small_bundle / "latest" / "users.parquet")


@pytest.fixture(scope="module")
def items(small_bundle: Path) -> pd.DataFrame:
    return pd.read_parquet(small_bundle / "latest" / "items.parquet")


def _ranked(resp: httpx.Response) -> list[tuple[str, float]]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["degraded"] == [], body
    return [(it["item_id"], round(it["score"], 4)) for it in body["items"]]


def test_recommendations_equal_the_splits(
    split: httpx.Client, combined: httpx.Client, users: pd.DataFrame, items: pd.DataFrame
) -> None:
    for user in users["user_id"].astype(str).iloc[:8]:
        path = f"/v1/users/{user}/recommendations"
        params = {"k": 20, "explain": "true"}
        a = split.get(path, params=params, headers=NO_CACHE)
        b = combined.get(path, params=params, headers=NO_CACHE)
        assert _ranked(a) == _ranked(b), user
        reasons = [it.get("reasons") for it in b.json()["items"]]
        assert reasons == [it.get("reasons") for it in a.json()["items"]]
        assert any(reasons), "explain gave no reasons: the comparison compares nothing"
    recent = [str(i) for i in items["item_id"].iloc[:3]]
    body = {"recent_item_ids": recent, "k": 10}
    a = split.post("/v1/recommendations", json=body, headers=NO_CACHE)
    b = combined.post("/v1/recommendations", json=body, headers=NO_CACHE)
    assert _ranked(a) == _ranked(b)


def test_item_calls_equal_the_splits(
    split: httpx.Client, combined: httpx.Client, items: pd.DataFrame
) -> None:
    item = str(items["item_id"].iloc[5])
    for mode in ("content", "collaborative"):
        path, params = f"/v1/items/{item}/similar", {"k": 10, "mode": mode}
        a, b = split.get(path, params=params), combined.get(path, params=params)
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        assert a.json()["items"] == b.json()["items"]
    assert split.get(f"/v1/items/{item}").json() == combined.get(f"/v1/items/{item}").json()
    word = str(items["title"].iloc[5]).split()[0]
    a, b = split.get("/v1/items", params={"q": word}), combined.get("/v1/items", params={"q": word})
    assert a.status_code == b.status_code == 200 and a.json()["items"] == b.json()["items"]
    assert a.json()["items"], f"searching {word!r} found nothing: the comparison compares nothing"


def test_stage_timings_name_the_services_as_the_split_does(
    combined: httpx.Client, users: pd.DataFrame
) -> None:
    user = str(users["user_id"].iloc[0])
    r = combined.get(f"/v1/users/{user}/recommendations", headers=NO_CACHE)
    names = {part.split(";")[0].strip() for part in r.headers["server-timing"].split(",")}
    assert {"retrieval", "ranking", "retrieval.ann", "ranking.score"} <= names, names


def test_mistakes_are_4xx_and_events_move_the_list(
    combined: httpx.Client, users: pd.DataFrame
) -> None:
    r = combined.get("/v1/users/no-such-user-anywhere/recommendations")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    r = combined.get("/v1/items/no-such-item/similar")
    assert r.status_code == 404 and "no-such-item" in r.json()["error"]["message"], r.text
    user = str(users["user_id"].iloc[1])
    before = _ranked(combined.get(f"/v1/users/{user}/recommendations", params={"k": 10}))
    top = before[0][0]
    r = combined.post(
        f"/v1/users/{user}/events", json={"item_id": top, "type": "rating", "rating": 1}
    )
    assert r.status_code == 202 and r.json()["degraded"] == [], r.text
    # Fresh connections, so that both workers answer: the event lives in Redis, not in one.
    for _ in range(6):
        after = _ranked(
            httpx.get(f"{combined.base_url}/v1/users/{user}/recommendations", params={"k": 10})
        )
        assert top not in [i for i, _ in after], "a rated item came back: the event was lost"


def test_readiness_status_and_admin_reach_the_in_process_services(
    combined: httpx.Client,
) -> None:
    ready = combined.get("/health/ready").json()
    assert ready["status"] == "ok" and ready["checks"]["retrieval"] == "ok", ready
    assert ready["checks"]["ranking"] == "ok", ready
    bundles = combined.get("/v1/admin/bundle", headers={"X-API-Key": ADMIN_KEY})
    assert bundles.status_code == 200, bundles.text
    versions = {s["service"]: s["version"] for s in bundles.json()["services"]}
    assert set(versions) == {"gateway", "retrieval", "ranking"}, versions
    assert len(set(versions.values())) == 1, versions
    # Two workers: each follows `latest` itself (a reload call reaches only one of them).
    assert all(s["watch_latest_s"] == 5.0 for s in bundles.json()["services"]), bundles.json()


def test_hot_reload_reaches_every_service_in_process(combined: httpx.Client) -> None:
    """The admin reload switches retrieval and ranking through their own routes (in
    process): a dry run verifies the bundle in all three, a reload of the version already
    served changes nothing, and a wrong key is refused before anything runs."""
    key = {"X-API-Key": ADMIN_KEY}
    refused = combined.post("/v1/admin/reload", json={"dry_run": True},
                            headers={"X-API-Key": "wrong"})  # fmt: skip
    assert refused.status_code in (401, 403), refused.text
    dry = combined.post("/v1/admin/reload", json={"dry_run": True}, headers=key, timeout=120)
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["dry_run"] is True
    assert {s["service"] for s in body["services"]} == {"gateway", "retrieval", "ranking"}
    assert all(s["version"] == body["bundle"] and s["dry_run"] for s in body["services"])
    same = combined.post("/v1/admin/reload", json={}, headers=key, timeout=120)
    assert same.status_code == 200, same.text
    assert not any(s["changed"] for s in same.json()["services"]), same.json()
