"""Bad input against the real services: every answer a 4xx in the shared error model, never a 500.

One stack (retrieval, ranking, gateway as real processes, real Redis under a key
prefix of its own) serves every test here; the last test reads the services' logs
and fails on any traceback the bad requests caused.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from harness.processes import ServiceProcess, running_stack
from shared.contracts.public_v1 import MAX_IDS, MAX_K

pytestmark = pytest.mark.slow

MAX_BODY = 65_536
UNKNOWN_ITEM = 99_999_999
UNKNOWN_USER = 987_654_321
UNUSUAL = [
    "مرحبا بالعالم שלום",  # right-to-left
    "\u202eevil\u202c toy story",  # RTL override
    "🎬🍿👩‍👩‍👧‍👦 🇫🇷",  # emoji, ZWJ sequence, flag
    "Z\u0351\u0364\u036ba\u0352\u0357l\u0308\u0301g\u0338o\u0333",  # combining marks
    "toy\x00story",  # NUL byte
    "\ufeff\u200b\u00a0 ",  # BOM, zero-width and no-break spaces only
    "\ud7ff\ue000\U0010fffd",  # edges of the planes
]


@pytest.fixture(scope="module")
def stack(
    small_bundle: Path, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    prefix = f"hrbad-{uuid.uuid4().hex[:8]}"
    with running_stack(
        small_bundle,
        tmp_path_factory.mktemp("bad-input"),
        redis_url=redis_url,
        prefix=prefix,
        HYBRIDREC_MAX_BODY_BYTES=str(MAX_BODY),
    ) as procs:
        yield procs


@pytest.fixture(scope="module")
def gw(stack: dict[str, ServiceProcess]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack["gateway"].url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def users(small_bundle: Path) -> pd.DataFrame:
    return pd.read_parquet(small_bundle / "latest" / "users.parquet")


@pytest.fixture(scope="module")
def items(small_bundle: Path) -> pd.DataFrame:
    return pd.read_parquet(small_bundle / "latest" / "items.parquet")


def assert_error(r: httpx.Response, status: int | None, *needles: str) -> dict[str, Any]:
    """The response is a 4xx (``status`` when given) in the shared model naming the problem."""
    if status is None:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    else:
        assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"error", "request_id"}, body
    assert body["request_id"] and r.headers["x-request-id"] == body["request_id"]
    err = body["error"]
    assert isinstance(err["code"], str) and err["code"], err
    assert isinstance(err["message"], str) and err["message"], err
    for needle in needles:
        assert needle.lower() in err["message"].lower(), (needle, err["message"])
    return body


def post_raw(gw: httpx.Client, path: str, text: str | bytes) -> httpx.Response:
    return gw.post(path, content=text, headers={"content-type": "application/json"})


# ----------------------------------------------------------------------------- unknown ids
def test_unknown_user_is_404_on_get_and_post(gw: httpx.Client) -> None:
    r = gw.get(f"/v1/users/{UNKNOWN_USER}/recommendations")
    assert_error(r, 404, str(UNKNOWN_USER))
    r = gw.post("/v1/recommendations", json={"user_id": UNKNOWN_USER})
    assert_error(r, 404, str(UNKNOWN_USER))


def test_unknown_item_is_404_on_every_path_that_takes_one(
    gw: httpx.Client, users: pd.DataFrame, items: pd.DataFrame
) -> None:
    uid = str(users.iloc[0].user_id)
    known = str(items.iloc[0].item_id)
    gets = [
        f"/v1/items/{UNKNOWN_ITEM}",
        f"/v1/items/{UNKNOWN_ITEM}/similar",
        f"/v1/items/{UNKNOWN_ITEM}/similar?mode=collaborative",
    ]
    for path in gets:
        assert_error(gw.get(path), 404, str(UNKNOWN_ITEM))
    posts: list[tuple[str, dict[str, Any]]] = [
        (f"/v1/users/{uid}/events", {"item_id": UNKNOWN_ITEM, "type": "view"}),
        (f"/v1/users/{uid}/events", {"item_id": UNKNOWN_ITEM, "type": "rating", "rating": 4}),
        ("/v1/recommendations", {"recent_item_ids": [known, UNKNOWN_ITEM]}),
        ("/v1/recommendations", {"ratings": [{"item_id": UNKNOWN_ITEM, "rating": 5}]}),
        # A low rating is not history, but an unknown id is still the caller's mistake.
        ("/v1/recommendations", {"ratings": [{"item_id": UNKNOWN_ITEM, "rating": 1}]}),
        ("/v1/recommendations", {"user_id": uid, "recent_item_ids": [UNKNOWN_ITEM]}),
    ]
    for path, body in posts:
        assert_error(gw.post(path, json=body), 404, str(UNKNOWN_ITEM))


# ----------------------------------------------------------------------------- k and types
@pytest.mark.parametrize("k", [0, -1, -(2**40), MAX_K + 1, 10**30])
def test_k_out_of_range_is_422_on_get_and_post(
    gw: httpx.Client, users: pd.DataFrame, items: pd.DataFrame, k: int
) -> None:
    uid = str(users.iloc[0].user_id)
    iid = str(items.iloc[0].item_id)
    assert_error(gw.get(f"/v1/users/{uid}/recommendations", params={"k": k}), 422, "k")
    assert_error(gw.get(f"/v1/items/{iid}/similar", params={"k": k}), 422, "k")
    body = {"recent_item_ids": [iid], "k": k}
    assert_error(gw.post("/v1/recommendations", json=body), 422, "k")


def test_malformed_json_is_422(gw: httpx.Client, users: pd.DataFrame) -> None:
    uid = str(users.iloc[0].user_id)
    for text in ['{"recent_item_ids": [1, 2', "{'k': 3}", "", "[1, 2,]", "\xff\xfe", "nul\x00"]:
        r = post_raw(gw, "/v1/recommendations", text.encode("latin-1"))
        assert_error(r, 422, "JSON")
    assert_error(post_raw(gw, f"/v1/users/{uid}/events", '{"item_id": 1,'), 422, "JSON")
    assert_error(post_raw(gw, "/v1/items", "title=x"), 422, "JSON")


def test_wrong_types_are_422_naming_the_field(
    gw: httpx.Client, users: pd.DataFrame, items: pd.DataFrame
) -> None:
    uid = str(users.iloc[0].user_id)
    iid = str(items.iloc[0].item_id)
    cases: list[tuple[str, Any, str]] = [
        ("/v1/recommendations", {"k": "ten"}, "k"),
        ("/v1/recommendations", {"recent_item_ids": "1,2,3"}, "recent_item_ids"),
        ("/v1/recommendations", {"recent_item_ids": [1.5]}, "recent_item_ids"),
        ("/v1/recommendations", {"recent_item_ids": [""]}, "recent_item_ids"),
        ("/v1/recommendations", {"recent_item_ids": ["a b"]}, "recent_item_ids"),
        ("/v1/recommendations", {"recent_item_ids": [True]}, "recent_item_ids"),
        ("/v1/recommendations", {"recent_item_ids": [None]}, "recent_item_ids"),
        ("/v1/recommendations", {"user_id": -3}, "user_id"),
        ("/v1/recommendations", {"user_id": "x" * 129}, "user_id"),
        ("/v1/recommendations", {"user_id": "{u1}"}, "user_id"),
        ("/v1/recommendations", {"ratings": [{"item_id": iid}]}, "rating"),
        ("/v1/recommendations", {"ratings": [{"item_id": iid, "rating": 9}]}, "rating"),
        ("/v1/recommendations", {"exclude_seen": "maybe"}, "exclude_seen"),
        ("/v1/recommendations", {"user_features": {"age": "old"}}, "age"),
        # any user attribute may be named (issue 19.4), but its value is a text, a number or
        # a list of texts
        ("/v1/recommendations", {"user_features": {"country": {"code": "FR"}}}, "country"),
        ("/v1/recommendations", [1, 2, 3], "body"),
        ("/v1/recommendations", "just a string", "body"),
        (f"/v1/users/{uid}/events", {"item_id": "o/n/e"}, "item_id"),
        (f"/v1/users/{uid}/events", {"item_id": ".."}, "item_id"),
        (f"/v1/users/{uid}/events", {"item_id": iid, "type": "refund"}, "type"),
        (f"/v1/users/{uid}/events", {"item_id": iid, "timestamp": -1}, "timestamp"),
        ("/v1/items", {"title": 42}, "title"),
        ("/v1/items", {"title": ""}, "title"),
        ("/v1/items", {"title": "x", "genres": "Comedy"}, "genres"),
        ("/v1/items", {"title": "x", "year": 99999}, "year"),
        ("/v1/items", {}, "title"),
    ]
    for path, body, field in cases:
        assert_error(gw.post(path, json=body), 422, field)
    for path, field in [
        ("/v1/users/a%20b/recommendations", "user_id"),
        ("/v1/users/%7Bu1%7D/recommendations", "user_id"),
        (f"/v1/users/{'u' * 129}/recommendations", "user_id"),
        (f"/v1/users/{uid}/recommendations?k=1.5", "k"),
        (f"/v1/users/{uid}/recommendations?exclude_seen=perhaps", "exclude_seen"),
        ("/v1/items/a%20b", "item_id"),
        ("/v1/items/%C3%A9", "item_id"),
        (f"/v1/items/{'9' * 129}", "item_id"),
        (f"/v1/items/{iid}/similar?mode=telepathy", "mode"),
        ("/v1/items?q=", "q"),
        ("/v1/items", "q"),
        ("/v1/items?q=toy&limit=0", "limit"),
    ]:
        assert_error(gw.get(path), 422, field)


def test_unknown_fields_are_422(gw: httpx.Client, users: pd.DataFrame, items: pd.DataFrame) -> None:
    uid = str(users.iloc[0].user_id)
    iid = str(items.iloc[0].item_id)
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/recommendations", {"recent_item_ids": [iid], "kk": 3}, "kk"),
        ("/v1/recommendations", {"ratings": [{"item_id": iid, "rating": 4, "x": 1}]}, "x"),
        (f"/v1/users/{uid}/events", {"item_id": iid, "colour": "red"}, "colour"),
        ("/v1/items", {"title": "A film", "director": "Someone"}, "director"),
    ]
    for path, body, field in cases:
        assert_error(gw.post(path, json=body), 422, field)


def test_rating_event_without_rating_is_422(gw: httpx.Client, users: pd.DataFrame) -> None:
    uid = str(users.iloc[0].user_id)
    iid = str(users.iloc[0].history[0])
    r = gw.post(f"/v1/users/{uid}/events", json={"item_id": iid, "type": "rating"})
    assert_error(r, 422, "rating")
    r = gw.post(f"/v1/users/{uid}/events", json={"item_id": iid, "type": "rating", "rating": None})
    assert_error(r, 422, "rating")


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_ratings_are_422(gw: httpx.Client, users: pd.DataFrame, raw: str) -> None:
    uid = str(users.iloc[0].user_id)
    iid = str(users.iloc[0].history[0])
    event = f'{{"item_id": {iid}, "type": "rating", "rating": {raw}}}'
    assert_error(post_raw(gw, f"/v1/users/{uid}/events", event), 422, "rating")
    recs = f'{{"ratings": [{{"item_id": {iid}, "rating": {raw}}}]}}'
    assert_error(post_raw(gw, "/v1/recommendations", recs), 422, "rating")
    k = f'{{"recent_item_ids": [{iid}], "k": {raw}}}'
    assert_error(post_raw(gw, "/v1/recommendations", k), 422, "k")


def test_odd_bodies_are_4xx_in_the_shared_model(gw: httpx.Client) -> None:
    deep = "[" * 20_000 + "]" * 20_000  # deeper than Python's recursion limit
    assert_error(post_raw(gw, "/v1/recommendations", deep), None, "JSON")
    deep_obj = '{"a":' * 5_000 + "1" + "}" * 5_000
    assert_error(post_raw(gw, "/v1/recommendations", deep_obj), None, "JSON")
    r = gw.post("/v1/recommendations", content=b'{"k": 3}', headers={"content-type": "text/plain"})
    assert_error(r, 422, "Content-Type: application/json")
    assert_error(post_raw(gw, "/v1/recommendations", '{"k": 1e400}'), 422, "k")
    assert_error(post_raw(gw, "/v1/recommendations", '{"k": 3, "k": "x"}'), 422, "k")
    assert_error(gw.put("/v1/recommendations", json={}), 405)


def test_long_lists_within_each_limit_are_not_a_500(
    gw: httpx.Client, users: pd.DataFrame, items: pd.DataFrame
) -> None:
    """Each list at its limit: what the gateway builds from them must not break its own calls."""
    known = [str(i) for i in items["item_id"]]
    recent = (known * (MAX_IDS // len(known) + 1))[:MAX_IDS]
    ratings = [{"item_id": i, "rating": 5} for i in reversed(recent)]
    exclude = list(range(10**6, 10**6 + MAX_IDS))  # unknown ids to leave out are harmless
    body = {"recent_item_ids": recent, "ratings": ratings, "exclude_item_ids": exclude, "k": 5}
    assert len(json.dumps(body)) < MAX_BODY
    r = gw.post("/v1/recommendations", json=body)
    assert r.status_code == 200, r.text[:500]
    got = [it["item_id"] for it in r.json()["items"]]
    assert len(got) == len(set(got)) and not set(got) & set(known)
    uid = str(users.iloc[0].user_id)
    r = gw.post("/v1/recommendations", json={"user_id": uid, **body, "exclude_seen": False})
    assert r.status_code == 200, r.text[:500]
    assert len(r.json()["items"]) == 5


def test_overlong_genre_in_the_query_is_422(gw: httpx.Client, users: pd.DataFrame) -> None:
    uid = str(users.iloc[0].user_id)
    r = gw.get(f"/v1/users/{uid}/recommendations", params={"genres": "Comedy," + "g" * 150})
    assert_error(r, 422, "genres")
    r = gw.get(f"/v1/users/{uid}/recommendations", params={"genres": "x" * 2001})
    assert_error(r, 422, "genres")


# ----------------------------------------------------------------------------- sizes
def test_a_million_recent_ids_is_refused(gw: httpx.Client) -> None:
    text = json.dumps({"recent_item_ids": list(range(1, 1_000_001))})
    assert len(text) > MAX_BODY
    assert_error(post_raw(gw, "/v1/recommendations", text), 413, "HYBRIDREC_MAX_BODY_BYTES")


def test_too_many_ids_under_the_body_limit_is_422(gw: httpx.Client) -> None:
    body = {"recent_item_ids": [1] * (MAX_IDS + 1)}
    assert len(json.dumps(body)) < MAX_BODY
    assert_error(gw.post("/v1/recommendations", json=body), 422, "recent_item_ids")


def test_body_over_the_limit_is_413_declared_or_chunked(gw: httpx.Client) -> None:
    text = json.dumps({"title": "x" * (MAX_BODY + 10)})
    assert_error(post_raw(gw, "/v1/items", text), 413, str(MAX_BODY))

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        data = text.encode()
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    r = gw.post("/v1/items", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, str(MAX_BODY))


def test_duplicate_recent_ids_give_no_duplicates(gw: httpx.Client, items: pd.DataFrame) -> None:
    ids = [str(i) for i in items["item_id"].head(3)]
    for exclude_seen in (True, False):
        body = {"recent_item_ids": ids * 50 + ids[:1] * 20, "k": 30, "exclude_seen": exclude_seen}
        r = gw.post("/v1/recommendations", json=body)
        assert r.status_code == 200, r.text
        got = [it["item_id"] for it in r.json()["items"]]
        assert len(got) == 30 and len(set(got)) == 30
        if exclude_seen:
            assert not set(got) & set(ids)


def test_odd_request_ids_are_never_a_500(gw: httpx.Client, users: pd.DataFrame) -> None:
    uid = str(users.iloc[0].user_id)
    for rid in ["é-ü-🍿".encode(), b"x" * 500, b"a b\tc", b"\x80\xff\xfe"]:
        r = gw.get(f"/v1/users/{uid}/recommendations", headers=[(b"x-request-id", rid)])
        assert r.status_code == 200, (rid, r.status_code, r.text[:300])
        echoed = r.json()["request_id"]
        assert echoed == r.headers["x-request-id"] and 0 < len(echoed) <= 64
        assert echoed.isascii() and echoed.isprintable()


# ----------------------------------------------------------------------------- unicode
def test_unusual_unicode_in_search_is_never_a_500(gw: httpx.Client) -> None:
    for q in [*UNUSUAL, "é" * 200, "🍿" * 200, "a\u0301" * 100]:
        r = gw.get("/v1/items", params={"q": q})
        assert r.status_code == 200, (q, r.status_code, r.text[:300])
        assert isinstance(r.json()["items"], list)
    # (A request line far beyond this gets uvicorn's own 400 before any app code runs.)
    for q in ["x" * 201, "🍿" * 201, "a\u0301" * 101, "a" * 60_000]:
        assert_error(gw.get("/v1/items", params={"q": q}), None)


def test_unusual_unicode_titles_are_stored_verbatim(gw: httpx.Client) -> None:
    for title in [*UNUSUAL[:5], "🍿" * 500, "x" * 500]:
        r = gw.post("/v1/items", json={"title": title, "genres": ["Drama"]})
        assert r.status_code == 201, (title[:40], r.status_code, r.text[:300])
        new = r.json()
        assert new["title"] == title and new["fresh"] is True
        assert gw.get(f"/v1/items/{new['item_id']}").json()["title"] == title
    for title in ["x" * 501, "🍿" * 501, "a" * 60_000]:
        assert_error(gw.post("/v1/items", json={"title": title}), 422, "title")
    assert_error(gw.post("/v1/items", json={"title": "ok", "genres": ["g" * 101]}), 422, "genres")


def test_unusual_unicode_genres_filter_is_never_a_500(
    gw: httpx.Client, users: pd.DataFrame
) -> None:
    uid = str(users.iloc[0].user_id)
    for g in UNUSUAL:
        r = gw.get(f"/v1/users/{uid}/recommendations", params={"genres": g, "k": 5})
        assert r.status_code == 200, (g, r.status_code, r.text[:300])
        r = gw.post("/v1/recommendations", json={"user_id": uid, "genres": [g], "k": 5})
        assert r.status_code == 200, (g, r.status_code, r.text[:300])


def test_unusual_user_features_are_never_a_500(gw: httpx.Client, items: pd.DataFrame) -> None:
    recent = [str(items.iloc[0].item_id)]
    for text in UNUSUAL:
        features = {"gender": text[:20], "occupation": text, "age": 130}
        for body in ({"recent_item_ids": recent}, {"user_id": UNKNOWN_USER}, {}):
            r = gw.post("/v1/recommendations", json={**body, "user_features": features, "k": 5})
            assert r.status_code == 200, (text, body, r.status_code, r.text[:300])
            assert len(r.json()["items"]) == 5


# ----------------------------------------------------------------------------- ranking input
def test_rank_rejects_candidates_it_cannot_score(
    stack: dict[str, ServiceProcess], items: pd.DataFrame
) -> None:
    """Found by schema fuzzing: these were a 500 (OverflowError) or NaN scores sent as null."""
    known = str(items.iloc[0].item_id)

    def one(item_id: Any = known, score: float = 0.5, **source: Any) -> dict[str, Any]:
        """One candidate as columns, with per-source columns ``source_scores=...``."""
        return {"item_ids": [item_id], "scores": [score], "sources": ["two_tower"], **source}

    bad: list[tuple[dict[str, Any], str]] = [
        (one(item_id=2**63), "item_ids"),  # internal columns take strings only
        (one(item_id="a b"), "item_ids"),
        (one(item_id=""), "item_ids"),
        (one(score=1e300), "scores"),
        (one(source_scores={"two_tower": [-1e30]}), "source_scores"),
        (one(source_ranks={"two_tower": [-(2**50)]}), "source_ranks"),
        (one(source_ranks={"two_tower": [0]}), "source_ranks"),
    ]
    with httpx.Client(base_url=stack["ranking"].url, timeout=30) as rk:
        for cols, field in bad:
            assert_error(rk.post("/v1/rank", json={"columns": cols}), 422, field)
        nan = (
            f'{{"columns": {{"item_ids": ["{known}"], "scores": [NaN], "sources": ["x"]}}}}'
        )
        assert_error(post_raw(rk, "/v1/rank", nan), 422, "finite")
        extreme = {
            "item_ids": [known, "fresh:9007199254740992"],
            "scores": [-1e9, 0.5],
            "sources": ["two_tower", "two_tower"],
            "source_scores": {"two_tower": [1e9, None]},
            "source_ranks": {"two_tower": [1, None]},
        }
        r = rk.post("/v1/rank", json={"columns": extreme})
        assert r.status_code == 200, r.text[:300]
        assert all(isinstance(it["score"], float) for it in r.json()["items"]), r.text[:300]


# ----------------------------------------------------------------------------- no traceback
def test_zz_no_traceback_in_any_service_log(stack: dict[str, ServiceProcess]) -> None:
    """Runs last in this module: the bad requests above left no stack trace behind."""
    for proc in stack.values():
        assert proc.proc is not None and proc.proc.poll() is None, proc.tail()
        log = proc.log_path.read_text(errors="replace")
        assert "Traceback" not in log, f"{proc.name}:\n{log[-4000:]}"
        assert "internal_error" not in log, f"{proc.name}:\n{log[-4000:]}"
