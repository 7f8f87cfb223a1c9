"""End to end: the three services as real processes, real Redis, a small real bundle."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from harness.processes import ServiceProcess, running_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle_root(small_bundle: Path) -> Path:
    return small_bundle


@pytest.fixture(scope="module")
def stack(
    bundle_root: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    prefix = f"hre2e-{uuid.uuid4().hex[:8]}"
    with running_stack(
        bundle_root, tmp_path_factory.mktemp("e2e-run"), redis_url=redis_url, prefix=prefix
    ) as procs:
        yield procs


@pytest.fixture(scope="module")
def gw(stack: dict[str, ServiceProcess]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack["gateway"].url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def users(bundle_root: Path) -> pd.DataFrame:
    return pd.read_parquet(bundle_root / "latest" / "users.parquet")


@pytest.fixture(scope="module")
def items(bundle_root: Path) -> pd.DataFrame:
    return pd.read_parquet(bundle_root / "latest" / "items.parquet")


def test_every_service_is_ready_and_exports_metrics(stack: dict[str, ServiceProcess]) -> None:
    for proc in stack.values():
        ready = httpx.get(f"{proc.url}/health/ready").json()
        assert ready["status"] == "ok", ready
        if proc.name == "retrieval":  # the small catalogue is searched exactly
            assert ready["checks"]["search"] == "ok (two_tower: exact, content: exact)", ready
            assert "MB anonymous memory in huge pages (THP " in ready["checks"]["huge_pages"]
        metrics = httpx.get(f"{proc.url}/metrics").text
        assert "hybridrec_http_request_seconds" in metrics


def test_known_user_gets_k_unseen_items(gw: httpx.Client, users: pd.DataFrame) -> None:
    row = users.iloc[0]
    r = gw.get(f"/v1/users/{row.user_id!s}/recommendations", params={"k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [it["item_id"] for it in body["items"]]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert not set(ids) & {str(i) for i in row.history}
    assert [it["rank"] for it in body["items"]] == list(range(1, 11))
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["degraded"] == [] and body["model_version"] and body["request_id"]
    assert all(it["title"] for it in body["items"])


def test_genre_filter_and_explain(gw: httpx.Client, users: pd.DataFrame) -> None:
    uid = str(users.iloc[1].user_id)
    r = gw.get(
        f"/v1/users/{uid}/recommendations",
        params={"k": 5, "genres": "Comedy,Romance", "explain": "true"},
    )
    assert r.status_code == 200, r.text
    got = r.json()["items"]
    assert len(got) == 5
    for it in got:
        assert {"Comedy", "Romance"} & set(it["genres"]), it
        assert it["reasons"] and it["reasons"][0].startswith("similar to ")


def test_unknown_user_is_404_with_a_clear_message(gw: httpx.Client) -> None:
    r = gw.get("/v1/users/987654321/recommendations")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "not_found" and "987654321" in err["message"]
    assert "recent_item_ids" in err["message"]


def test_anonymous_user_from_recent_items(gw: httpx.Client, items: pd.DataFrame) -> None:
    animation = items[items["genres"].apply(lambda g: "Animation" in list(g))]
    recent = [str(i) for i in animation["item_id"].head(5)]
    r = gw.post("/v1/recommendations", json={"recent_item_ids": recent, "k": 10})
    assert r.status_code == 200, r.text
    got = r.json()["items"]
    assert len(got) == 10 and not {it["item_id"] for it in got} & set(recent)
    share = sum("Animation" in it["genres"] or "Children" in it["genres"] for it in got) / 10
    base = items["genres"].apply(lambda g: "Animation" in list(g) or "Children" in list(g)).mean()
    assert share > base, (share, base)


def test_similar_items_both_modes(gw: httpx.Client, items: pd.DataFrame) -> None:
    iid = int(items.sort_values("popularity").iloc[-1].item_id)
    for mode in ("content", "collaborative"):
        r = gw.get(f"/v1/items/{iid}/similar", params={"k": 5, "mode": mode})
        assert r.status_code == 200, r.text
        body = r.json()
        ids = [it["item_id"] for it in body["items"]]
        assert len(ids) == 5 and iid not in ids and body["mode"] == mode


def test_item_lookup_and_search(gw: httpx.Client, items: pd.DataFrame) -> None:
    row = items.iloc[0]
    r = gw.get(f"/v1/items/{row.item_id!s}")
    assert r.status_code == 200 and r.json()["title"] == row.title
    word = row.title.split()[0]
    found = gw.get("/v1/items", params={"q": word, "limit": 5}).json()["items"]
    assert str(row.item_id) in [it["item_id"] for it in found] or len(found) == 5
    assert gw.get("/v1/items/99999999").status_code == 404


def test_cache_miss_hit_and_invalidation_by_an_event(
    stack: dict[str, ServiceProcess], gw: httpx.Client, users: pd.DataFrame
) -> None:
    uid = str(users.iloc[2].user_id)
    retrieval = stack["retrieval"].url
    first = httpx.post(f"{retrieval}/v1/candidates", json={"user_id": uid, "k": 50}).json()
    second = httpx.post(f"{retrieval}/v1/candidates", json={"user_id": uid, "k": 50}).json()
    assert (first["cache"], second["cache"]) == ("miss", "hit")
    # The gateway's result cache: computed once, then served as is (a new request_id).
    r1 = gw.get(f"/v1/users/{uid}/recommendations", params={"k": 10})
    r2 = gw.get(f"/v1/users/{uid}/recommendations", params={"k": 10})
    assert (r1.headers["x-hybridrec-cache"], r2.headers["x-hybridrec-cache"]) == ("miss", "hit")
    assert {**r1.json(), "request_id": None} == {**r2.json(), "request_id": None}
    assert r1.json()["request_id"] != r2.json()["request_id"] and r2.json()["request_id"]
    other_k = gw.get(f"/v1/users/{uid}/recommendations", params={"k": 9})
    assert other_k.headers["x-hybridrec-cache"] == "miss"
    before = r2.json()["items"]
    top = before[0]["item_id"]
    ev = gw.post(f"/v1/users/{uid}/events", json={"item_id": top, "type": "rating", "rating": 5})
    assert ev.status_code == 202, ev.text
    assert ev.json()["status"] == "accepted"
    third = httpx.post(f"{retrieval}/v1/candidates", json={"user_id": uid, "k": 50}).json()
    assert third["cache"] == "miss"
    assert third["history"][-1] == top
    after = gw.get(f"/v1/users/{uid}/recommendations", params={"k": 10})
    assert after.headers["x-hybridrec-cache"] == "miss"  # the event made the cached answer stale
    assert top not in [it["item_id"] for it in after.json()["items"]]
    metrics = httpx.get(f"{stack['gateway'].url}/metrics").text
    assert 'hybridrec_result_cache_answers_total{outcome="hit"}' in metrics


def test_a_low_rating_is_never_recommended_again(gw: httpx.Client, users: pd.DataFrame) -> None:
    uid = str(users.iloc[7].user_id)
    first = gw.get(f"/v1/users/{uid}/recommendations", params={"k": 10})
    assert first.status_code == 200, first.text
    disliked = first.json()["items"][0]["item_id"]
    ev = gw.post(
        f"/v1/users/{uid}/events", json={"item_id": disliked, "type": "rating", "rating": 1}
    )
    assert ev.status_code == 202 and ev.json()["degraded"] == [], ev.text
    after = gw.get(f"/v1/users/{uid}/recommendations", params={"k": 10})
    assert after.status_code == 200 and after.json()["degraded"] == [], after.text
    assert disliked not in [it["item_id"] for it in after.json()["items"]]


def test_event_for_unknown_item_is_404(gw: httpx.Client, users: pd.DataFrame) -> None:
    uid = str(users.iloc[0].user_id)
    r = gw.post(f"/v1/users/{uid}/events", json={"item_id": 99999999, "type": "view"})
    assert r.status_code == 404


def test_new_item_appears_in_similar_and_recommendations(
    gw: httpx.Client, items: pd.DataFrame
) -> None:
    src = items.sort_values("popularity").iloc[-1]
    body = {
        "title": f"{src.title} Returns",
        "genres": list(src.genres),
        "tags": list(src.tags),
        "year": int(src.year) + 1,
        "overview": f"A new film in the spirit of {src.title}.",
    }
    anon = {"recent_item_ids": [str(src.item_id)], "k": 20}
    first = gw.post("/v1/recommendations", json=anon)
    again = gw.post("/v1/recommendations", json=anon)
    assert (first.headers["x-hybridrec-cache"], again.headers["x-hybridrec-cache"]) == (
        "miss",
        "hit",
    )
    r = gw.post("/v1/items", json=body)
    assert r.status_code == 201, r.text
    new = r.json()
    assert isinstance(new["item_id"], str) and new["fresh"] is True
    assert int(new["item_id"]) > max(int(i) for i in items["item_id"])  # the next decimal id
    sim = gw.get(f"/v1/items/{src.item_id!s}/similar", params={"k": 10}).json()["items"]
    assert new["item_id"] in [it["item_id"] for it in sim]
    fresh = gw.post("/v1/recommendations", json=anon)  # the same request as before the item
    assert fresh.headers["x-hybridrec-cache"] == "miss"
    assert new["item_id"] in [it["item_id"] for it in fresh.json()["items"]]
    assert gw.get(f"/v1/items/{new['item_id']}").json()["title"] == body["title"]


def test_candidate_columns_are_aligned_and_ranking_orders_them(
    stack: dict[str, ServiceProcess], users: pd.DataFrame, items: pd.DataFrame
) -> None:
    retrieval, ranking = stack["retrieval"].url, stack["ranking"].url
    uid = str(users.iloc[4].user_id)
    recent = [str(i) for i in items.sort_values("popularity").item_id.iloc[-3:]]
    titles = dict(zip(items.item_id.astype(int), items.title, strict=True))
    for body in ({"user_id": uid, "k": 120}, {"history": recent, "k": 80, "genres": ["Drama"]}):
        answer = httpx.post(f"{retrieval}/v1/candidates", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        got = answer.json()["columns"]
        n = len(got["item_ids"])
        assert 0 < n <= body["k"] and len(set(got["item_ids"])) == n
        assert len(got["scores"]) == len(got["sources"]) == len(got["titles"]) == n
        # metadata row-aligned (an id outside the bundle is an item added by an earlier test)
        want = [
            titles[i] if i in titles else httpx.get(f"{retrieval}/v1/items/{i}").json()["title"]
            for i in got["item_ids"]
        ]
        assert got["titles"] == want
        assert got["scores"] == sorted(got["scores"], reverse=True)  # best first
        assert set(got["source_scores"]) == set(got["source_ranks"])
        catalogue = [j for j, s in enumerate(got["sources"]) if s != "fresh"]
        for name, ranks in got["source_ranks"].items():
            assert len(ranks) == n and len(got["source_scores"][name]) == n
            # a source's score is present exactly where it proposed a catalogue candidate
            # (a fresh item has its source's score, but no rank in that source's list)
            scores = got["source_scores"][name]
            assert [ranks[j] is None for j in catalogue] == [scores[j] is None for j in catalogue]
        common = {"user_id": body.get("user_id"), "history": answer.json()["history"][-50:]}
        ranked = httpx.post(f"{ranking}/v1/rank", json={**common, "columns": got}, timeout=30)
        assert ranked.status_code == 200, ranked.text
        order = ranked.json()["items"]
        assert sorted(i["item_id"] for i in order) == sorted(got["item_ids"])
        assert [i["score"] for i in order] == sorted((i["score"] for i in order), reverse=True)
    # Columns of unequal length, or the removed row layout: 422 saying what to fix.
    bad = {**got, "scores": got["scores"][:-1]}
    r = httpx.post(f"{ranking}/v1/rank", json={"columns": bad}, timeout=30)
    assert r.status_code == 422 and "equal length" in r.json()["error"]["message"], r.text
    r = httpx.post(f"{ranking}/v1/rank", json={"columns": got, "candidates": []}, timeout=30)
    assert r.status_code == 422 and "candidates" in r.json()["error"]["message"], r.text
