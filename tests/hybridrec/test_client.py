"""The Python client against a real gateway stack (three processes, real Redis, a real bundle)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness.processes import ServiceProcess, free_port, running_stack
from hybridrec.client import AsyncHybridrecClient, HybridrecClient, HybridrecClientError
from shared.contracts.errors import HybridrecError
from shared.contracts.events_v1 import EventAccepted
from shared.contracts.public_v1 import (
    Health,
    ItemDetail,
    ItemList,
    RecommendationRequest,
    Recommendations,
    SimilarItems,
)
from shared.contracts.status_v1 import Status, UserHistory

pytestmark = pytest.mark.slow

API_KEY = "client-test-key"
UNKNOWN_ITEM = 99999999


@pytest.fixture(scope="module")
def stack(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    prefix = f"hrclient-{uuid.uuid4().hex[:8]}"
    with running_stack(
        small_bundle,
        tmp_path_factory.mktemp("client-run"),
        redis_url=redis_url,
        prefix=prefix,
        HYBRIDREC_API_KEYS=API_KEY,
    ) as procs:
        yield procs


@pytest.fixture(scope="module")
def base_url(stack: dict[str, ServiceProcess]) -> str:
    return stack["gateway"].url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[HybridrecClient]:
    with HybridrecClient(base_url, api_key=API_KEY, timeout=30.0) as c:
        yield c


@pytest.fixture(scope="module")
def users(small_bundle: Path) -> pd.DataFrame:
    return pd.read_parquet(small_bundle / "latest" / "users.parquet")


@pytest.fixture(scope="module")
def items(small_bundle: Path) -> pd.DataFrame:
    return pd.read_parquet(small_bundle / "latest" / "items.parquet")


def _check_ranked(recs: Recommendations, k: int) -> list[int]:
    ids = [it.item_id for it in recs.items]
    assert len(ids) == k and len(set(ids)) == k
    assert [it.rank for it in recs.items] == list(range(1, k + 1))
    scores = [it.score for it in recs.items]
    assert scores == sorted(scores, reverse=True)
    assert recs.model_version and recs.request_id
    return ids


def test_health(client: HybridrecClient) -> None:
    health = client.health()
    assert isinstance(health, Health)
    assert health.status == "ok" and health.service == "gateway", health
    assert health.checks["retrieval"] == "ok" and health.model_version


def test_recommend_for_user_with_filters(client: HybridrecClient, users: pd.DataFrame) -> None:
    row = users.iloc[0]
    recs = client.recommend_for_user(
        str(row.user_id), k=5, genres=["Comedy", "Romance"], explain=True
    )
    assert isinstance(recs, Recommendations) and recs.user_id == str(row.user_id)
    ids = _check_ranked(recs, 5)
    assert not set(ids) & {str(i) for i in row.history}
    for it in recs.items:
        assert {"Comedy", "Romance"} & set(it.genres), it
        assert it.reasons and it.reasons[0].startswith("similar to ")
    plain = client.recommend_for_user(str(row.user_id), k=5)
    assert all(it.reasons is None for it in plain.items)


def test_recommend_from_a_model_and_from_a_dict(
    client: HybridrecClient, items: pd.DataFrame
) -> None:
    recent = [str(i) for i in items.sort_values("popularity")["item_id"].tail(3)]
    from_model = client.recommend(RecommendationRequest(recent_item_ids=recent, k=8))
    from_dict = client.recommend({"recent_item_ids": recent, "k": 8})
    assert _check_ranked(from_model, 8) == _check_ranked(from_dict, 8)
    assert from_model.user_id is None
    assert not set(_check_ranked(from_model, 8)) & set(recent)


def test_similar_items_get_item_and_search(client: HybridrecClient, items: pd.DataFrame) -> None:
    src = items.sort_values("popularity").iloc[-1]
    iid = str(src.item_id)
    for mode in ("content", "collaborative"):
        sim = client.similar_items(iid, k=5, mode=mode)
        assert isinstance(sim, SimilarItems) and sim.item_id == iid and sim.mode == mode
        assert len(sim.items) == 5 and iid not in [it.item_id for it in sim.items]
    item = client.get_item(iid)
    assert isinstance(item, ItemDetail)
    assert (item.item_id, item.title) == (iid, src.title)
    assert item.genres == list(src.genres)
    found = client.search_items(src.title, limit=5)
    assert isinstance(found, ItemList) and iid in [it.item_id for it in found.items]


def test_post_event_updates_recommendations(client: HybridrecClient, users: pd.DataFrame) -> None:
    uid = str(users.iloc[2].user_id)
    top = client.recommend_for_user(uid, k=10).items[0].item_id
    accepted = client.post_event(uid, top, type="rating", rating=5.0, timestamp=1_764_288_000)
    assert isinstance(accepted, EventAccepted)
    assert (accepted.status, accepted.user_id, accepted.item_id) == ("accepted", uid, top)
    assert accepted.event_id
    after = client.recommend_for_user(uid, k=10)
    assert top not in [it.item_id for it in after.items]
    view = client.post_event(uid, top)
    assert view.item_id == top and view.event_id != accepted.event_id


def test_status_and_user_history(
    client: HybridrecClient, users: pd.DataFrame, small_bundle: Path
) -> None:
    row = users.iloc[5]
    uid, known = str(row.user_id), [str(i) for i in row.history]
    hist = client.user_history(uid, limit=5)
    assert isinstance(hist, UserHistory) and hist.user_id == uid
    assert [e.item_id for e in hist.items] == list(dict.fromkeys(reversed(known)))[:5]
    assert {e.source for e in hist.items} == {"history"} and hist.total == len(set(known))

    # A low rating is no part of retrieval's history, but it tops the user's history here.
    top = client.recommend_for_user(uid, k=3).items[0]
    client.post_event(uid, top.item_id, type="rating", rating=1.5, timestamp=1_764_288_000)
    after = client.user_history(uid, limit=3)
    first = after.items[0]
    assert (first.item_id, first.title, first.source) == (top.item_id, top.title, "event")
    assert (first.type, first.rating, first.timestamp) == ("rating", 1.5, 1_764_288_000)
    assert after.total == hist.total + 1
    with pytest.raises(HybridrecClientError) as unknown:
        client.user_history(10**9)
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")

    status = client.status()
    assert isinstance(status, Status)
    assert [(s.service, s.status) for s in status.services] == [
        ("gateway", "ok"),
        ("retrieval", "ok"),
        ("ranking", "ok"),
    ]
    manifest = json.loads((small_bundle / "latest" / "manifest.json").read_text())
    assert status.bundle is not None and status.bundle.version == manifest["version"]
    assert (status.bundle.n_items, status.bundle.n_users) == (
        manifest["components"]["n_items"],
        manifest["components"]["n_users"],
    )
    assert status.bundle.metrics["valid_ndcg@10_retrieval"] == pytest.approx(
        manifest["metrics"]["valid_ndcg@10_retrieval"]
    )
    assert status.bundle.example_user_ids == [str(u) for u in users.user_id[:5]]
    assert status.traffic.total_requests >= 1 and status.traffic.total_events >= 1
    assert status.traffic.p50_ms is not None and status.traffic.p50_ms > 0


def test_add_item_then_look_it_up(client: HybridrecClient, items: pd.DataFrame) -> None:
    src = items.sort_values("popularity").iloc[-2]
    title = f"{src.title} Strikes Again"
    new = client.add_item(
        title,
        genres=list(src.genres),
        year=2026,
        overview=f"A new film in the spirit of {src.title}.",
        tags=["sequel"],
    )
    assert isinstance(new, ItemDetail) and new.fresh is True
    # a string id, the next decimal number above the catalogue's (MovieLens ids are decimal)
    assert int(new.item_id) > max(int(i) for i in items["item_id"]) and new.title == title
    assert client.get_item(new.item_id).title == title


def test_errors_carry_status_code_message_and_request_id(
    client: HybridrecClient, users: pd.DataFrame
) -> None:
    with pytest.raises(HybridrecClientError) as missing:
        client.get_item(UNKNOWN_ITEM)
    err = missing.value
    assert isinstance(err, HybridrecError)
    assert (err.status, err.code) == (404, "not_found")
    assert str(UNKNOWN_ITEM) in err.message and err.request_id
    assert "404" in str(err) and err.request_id in str(err)

    with pytest.raises(HybridrecClientError) as bad_k:
        client.recommend_for_user(str(users.iloc[0].user_id), k=0)
    assert (bad_k.value.status, bad_k.value.code) == (422, "invalid_request")
    assert "k" in bad_k.value.message and bad_k.value.request_id
    assert bad_k.value.details["errors"][0]["field"].endswith("k")

    with pytest.raises(HybridrecClientError) as bad_event:
        client.post_event(str(users.iloc[0].user_id), 1, type="rating")
    assert bad_event.value.status == 422 and "rating" in bad_event.value.message


def test_ids_are_strings_an_int_is_its_text_and_a_bad_id_never_leaves(
    client: HybridrecClient, items: pd.DataFrame
) -> None:
    iid = str(items.iloc[0].item_id)
    as_text, as_int = client.get_item(iid), client.get_item(int(iid))
    assert as_text.item_id == as_int.item_id == iid  # responses carry strings
    for bad in ("", "a/b", "x" * 129, "{u}", ".."):
        with pytest.raises(HybridrecClientError) as info:
            client.get_item(bad)
        err = info.value
        assert err.status is None and err.code == "invalid_request"  # nothing was sent
        assert "A-Z a-z 0-9 . _ : @ -" in err.message


def test_api_key_is_sent_and_required(base_url: str) -> None:
    with HybridrecClient(base_url, timeout=30.0) as anonymous:
        with pytest.raises(HybridrecClientError) as no_key:
            anonymous.search_items("toy")
        assert (no_key.value.status, no_key.value.code) == (401, "unauthorized")
        assert anonymous.health().status == "ok"  # ops routes need no key
    with HybridrecClient(base_url, api_key="wrong", timeout=30.0) as wrong:
        with pytest.raises(HybridrecClientError) as bad_key:
            wrong.get_item(1)
        assert bad_key.value.status == 401 and "not configured" in bad_key.value.message


def test_unreachable_gateway_is_a_client_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with HybridrecClient(url, timeout=2.0) as c, pytest.raises(HybridrecClientError) as err:
        c.health()
    assert err.value.status is None and err.value.code == "connection_error"
    assert url in err.value.message


def test_async_client_every_method(
    base_url: str, client: HybridrecClient, users: pd.DataFrame, items: pd.DataFrame
) -> None:
    uid = str(users.iloc[3].user_id)
    iid = str(items.sort_values("popularity").iloc[-3].item_id)
    title = str(items.sort_values("popularity").iloc[-3].title)
    sync_recs = client.recommend_for_user(uid, k=6, genres=["Drama"])

    async def run() -> None:
        async with AsyncHybridrecClient(base_url, api_key=API_KEY, timeout=30.0) as ac:
            health = await ac.health()
            assert health.status == "ok" and health.service == "gateway"
            status = await ac.status()
            assert status.bundle is not None and status.bundle.version == health.model_version
            hist = await ac.user_history(uid, limit=2)
            assert hist.user_id == uid and len(hist.items) == 2
            recs = await ac.recommend_for_user(uid, k=6, genres=["Drama"])
            assert _check_ranked(recs, 6) == [it.item_id for it in sync_recs.items]
            assert all("Drama" in it.genres for it in recs.items)
            anon = await ac.recommend({"recent_item_ids": [iid], "k": 4})
            assert iid not in _check_ranked(anon, 4)
            sim = await ac.similar_items(iid, k=3, mode="collaborative")
            assert sim.mode == "collaborative" and len(sim.items) == 3
            item = await ac.get_item(iid)
            assert item.title == title
            found = await ac.search_items(title, limit=3)
            assert iid in [it.item_id for it in found.items]
            event = await ac.post_event(uid, iid, type="click")
            assert (event.status, event.user_id, event.item_id) == ("accepted", uid, iid)
            new = await ac.add_item({"title": "Async Harbour", "genres": ["Drama"], "year": 2025})
            assert new.fresh and (await ac.get_item(new.item_id)).title == "Async Harbour"
            with pytest.raises(HybridrecClientError) as missing:
                await ac.get_item(UNKNOWN_ITEM)
            assert (missing.value.status, missing.value.code) == (404, "not_found")
            with pytest.raises(HybridrecClientError) as bad_k:
                await ac.recommend_for_user(uid, k=0)
            assert (bad_k.value.status, bad_k.value.code) == (422, "invalid_request")
            assert bad_k.value.request_id

    asyncio.run(run())


def test_filters_patch_and_batches_on_movielens(
    client: HybridrecClient, users: pd.DataFrame, items: pd.DataFrame
) -> None:
    """MovieLens bundles have genres (categorical list) and year (numeric) as attributes:
    the client's include/exclude/where, PATCH and batch calls work on them (issue 19.5)."""
    user = str(users.iloc[1].user_id)
    recs = client.recommend_for_user(user, k=5, include={"genres": ["Drama"]},
                                     exclude={"genres": ["Comedy"]}, where=["year>=1990"])
    assert len(recs.items) == 5 and not recs.fewer_than_k and recs.matched
    for it in recs.items:
        assert "Drama" in it.genres and "Comedy" not in it.genres and (it.year or 0) >= 1990
    first = str(items["item_id"].iat[3])
    sim = client.similar_items(first, k=4, where=["year<1980"])
    assert all((it.year or 9999) < 1980 for it in sim.items)
    top = client.recommend_for_user(user, k=3).items[0].item_id
    assert client.patch_item(top, available=False).available is False
    assert top not in [it.item_id for it in client.recommend_for_user(user, k=10).items]
    assert client.patch_item(top, available=True, attributes={"year": 1901}).attributes[
        "year"] == 1901
    with pytest.raises(HybridrecClientError) as err:
        client.recommend_for_user(user, k=3, include={"colour": ["red"]})
    assert err.value.status == 422 and "genres (categorical)" in err.value.message
    added = client.add_items([{"item_id": "990001", "title": "Batch Film",
                               "genres": ["Drama"]}, {"title": ""}])
    assert [r.status for r in added.rows] == [201, 422] and added.accepted == 1
    ev = client.post_events([{"user_id": user, "item_id": "990001", "type": "click"},
                             {"user_id": user, "item_id": "x y"}])
    assert [r.status for r in ev.rows] == [202, 422]
