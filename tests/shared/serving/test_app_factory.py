"""create_app: the shared error model, body limit, request ids, health, metrics, offline docs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest
from fastapi import Body, FastAPI
from fastapi.testclient import TestClient
from pydantic import Field

from shared.contracts import errors
from shared.contracts.errors import HybridrecError
from shared.contracts.public_v1 import ErrorResponse, StrictModel
from shared.serving.app_factory import create_app, ready_response

MAX_BODY = 256
ERROR_CLASSES = [
    errors.DataError,
    errors.DownloadError,
    errors.ConfigError,
    errors.BundleError,
    errors.NotFoundError,
    errors.ValidationError,
    errors.UnauthorizedError,
    errors.PayloadTooLargeError,
    errors.DependencyUnavailableError,
    errors.NotReadyError,
    errors.HybridrecError,
]


class Query(StrictModel):
    user_id: Annotated[int, Field(ge=0)]
    k: Annotated[int, Field(ge=1, le=50)] = 10
    item_ids: list[int] = []


def _build_app(events: list[str]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("start")
        app.state.ready = True
        yield
        events.append("stop")

    app = create_app(
        service="testsvc",
        title="Test service",
        description="A small app built with the shared factory.",
        version="9.9.9",
        lifespan=lifespan,
        max_body_bytes=MAX_BODY,
        openapi_tags=[{"name": "things", "description": "Test routes."}],
    )
    by_name = {cls.__name__: cls for cls in ERROR_CLASSES}

    @app.get("/raise/{name}", tags=["things"])
    async def raise_error(name: str) -> dict[str, str]:
        raise by_name[name](f"{name} happened; do the documented thing")

    @app.get("/data-error", tags=["things"])
    async def data_error() -> dict[str, str]:
        raise errors.DataError("rating must be numeric", path="ratings.csv", line=7)

    @app.get("/boom", tags=["things"])
    async def boom() -> dict[str, str]:
        raise RuntimeError("secret-internal-detail at /srv/app.py line 3")

    @app.post("/query", tags=["things"])
    async def query(body: Query) -> dict[str, Any]:
        return {"user_id": body.user_id, "k": body.k, "n": len(body.item_ids)}

    @app.post("/echo-raw", tags=["things"])
    async def echo_raw(payload: Annotated[dict[str, Any], Body()]) -> dict[str, int]:
        return {"keys": len(payload)}

    @app.get("/items/{item_id}", tags=["things"])
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/ready", tags=["things"])
    async def ready() -> Any:
        return ready_response("testsvc", "v1", {"bundle": "ok", "redis": "down"})

    return app


@pytest.fixture
def lifecycle() -> list[str]:
    return []


@pytest.fixture
def client(lifecycle: list[str]) -> Iterator[TestClient]:
    app = _build_app(lifecycle)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """Check the shared error model and return the body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    ErrorResponse.model_validate(body)
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] and body["request_id"] == resp.headers["x-request-id"]
    assert "Traceback" not in resp.text
    return dict(body)


def test_lifespan_runs(lifecycle: list[str]) -> None:
    app = _build_app(lifecycle)
    with TestClient(app) as c:
        assert lifecycle == ["start"]
        assert c.app.state.ready is True  # type: ignore[attr-defined]
    assert lifecycle == ["start", "stop"]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_hybridrec_error_maps_to_its_status(
    client: TestClient, cls: type[HybridrecError]
) -> None:
    resp = client.get(f"/raise/{cls.__name__}")
    body = _error(resp, cls.http_status, cls.code)
    assert body["error"]["message"] == f"{cls.__name__} happened; do the documented thing"
    assert "details" not in body["error"]


def test_error_details_are_included(client: TestClient) -> None:
    body = _error(client.get("/data-error"), 422, "data_error")
    assert body["error"]["message"] == "ratings.csv, line 7: rating must be numeric"
    assert body["error"]["details"] == {"path": "ratings.csv", "line": 7}


def test_malformed_json_is_422_saying_so(client: TestClient) -> None:
    resp = client.post(
        "/query", content=b'{"user_id": 3,', headers={"content-type": "application/json"}
    )
    body = _error(resp, 422, "invalid_request")
    assert "not valid JSON" in body["error"]["message"]
    assert body["error"]["details"]["errors"][0]["field"] == "body"


def test_wrong_types_are_422_naming_the_field(client: TestClient) -> None:
    body = _error(client.post("/query", json={"user_id": "abc"}), 422, "invalid_request")
    msg = body["error"]["message"]
    assert msg.startswith("user_id:") and "'abc'" in msg
    assert body["error"]["details"]["errors"][0]["field"] == "user_id"

    body = _error(client.post("/query", json={"user_id": 1, "k": 500}), 422, "invalid_request")
    assert body["error"]["message"].startswith("k:") and "500" in body["error"]["message"]

    body = _error(
        client.post("/query", json={"user_id": 1, "item_ids": [1, "x"]}), 422, "invalid_request"
    )
    assert body["error"]["details"]["errors"][0]["field"] == "item_ids.1"

    body = _error(client.post("/query", json={"k": 3}), 422, "invalid_request")
    assert body["error"]["message"] == "user_id: field required"

    body = _error(client.post("/query", json={"user_id": 1, "kk": 3}), 422, "invalid_request")
    assert body["error"]["message"].startswith("kk:")  # typo'd field names fail loudly


def test_many_validation_errors_are_summarised(client: TestClient) -> None:
    body = _error(
        client.post("/query", json={"user_id": 1, "item_ids": ["x"] * 15}), 422, "invalid_request"
    )
    assert len(body["error"]["details"]["errors"]) == 10
    assert body["error"]["message"].endswith("; and 5 more")


def test_valid_body_passes(client: TestClient) -> None:
    resp = client.post("/query", json={"user_id": 4, "item_ids": [1, 2, 3]})
    assert resp.status_code == 200
    assert resp.json() == {"user_id": 4, "k": 10, "n": 3}


def test_body_over_limit_with_content_length_is_413(client: TestClient) -> None:
    payload = b'{"user_id": 1, "item_ids": [' + b"1," * 200 + b"1]}"
    assert len(payload) > MAX_BODY
    resp = client.post("/query", content=payload, headers={"content-type": "application/json"})
    body = _error(resp, 413, "payload_too_large")
    assert f"limit is {MAX_BODY} bytes" in body["error"]["message"]


def test_body_over_limit_chunked_without_length_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"user_id": 1, "item_ids": ['
        for _ in range(200):  # 429 bytes in all
            yield b"1,"
        yield b"1]}"

    for path in ("/query", "/echo-raw"):
        resp = client.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in {k.lower() for k in resp.request.headers}
        body = _error(resp, 413, "payload_too_large")
        assert f"limit is {MAX_BODY} bytes" in body["error"]["message"]


def test_body_under_limit_chunked_passes(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"user_id": 2,'
        yield b' "item_ids": [5, 6]}'

    resp = client.post("/query", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 200 and resp.json()["n"] == 2


def test_unknown_path_and_wrong_method(client: TestClient) -> None:
    body = _error(client.get("/no/such/thing"), 404, "not_found")
    assert "GET /no/such/thing" in body["error"]["message"] and "/docs" in body["error"]["message"]
    _error(client.delete("/query"), 405, "method_not_allowed")
    _error(client.get("/items/not-a-number"), 422, "invalid_request")


def test_unexpected_exception_is_500_without_internals(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    resp = client.get("/boom", headers={"x-request-id": "req-500"})
    body = _error(resp, 500, "internal_error")
    assert "secret-internal-detail" not in resp.text
    assert "/srv/app.py" not in resp.text
    assert body["request_id"] == "req-500"
    assert "req-500" in body["error"]["message"]  # so the log line can be found
    assert any("req-500" in r.getMessage() for r in caplog.records)


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    resp = client.get("/health/live", headers={"x-request-id": "abc-123"})
    assert resp.headers.get_list("x-request-id") == ["abc-123"]
    resp = client.get("/raise/NotFoundError", headers={"x-request-id": "nf-1"})
    assert resp.headers.get_list("x-request-id") == ["nf-1"]  # exactly once
    assert resp.json()["request_id"] == "nf-1"
    generated = client.get("/health/live").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    assert client.get("/health/live").headers["x-request-id"] != generated
    long_id = "x" * 200
    assert (
        client.get("/health/live", headers={"x-request-id": long_id}).headers["x-request-id"]
        == "x" * 64
    )


def test_health_live(client: TestClient) -> None:
    resp = client.get("/health/live")
    assert resp.status_code == 200
    assert resp.json() == {
        "status": "ok",
        "service": "testsvc",
        "model_version": None,
        "checks": {},
    }


def test_ready_response() -> None:
    ok = ready_response("s", "v1", {"bundle": "ok", "redis": "ok (memory)"})
    assert ok.status_code == 200
    bad = ready_response("s", None, {"bundle": "missing: run hybridrec train", "redis": "ok"})
    assert bad.status_code == 503
    assert b'"not_ready"' in bad.body and b"hybridrec train" in bad.body


def test_metrics_histogram_by_route_template(client: TestClient) -> None:
    client.get("/items/7")
    client.get("/items/8")
    client.get("/nope")
    client.post(
        "/query", content=b"{" + b" " * 400 + b"}", headers={"content-type": "application/json"}
    )
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert "# TYPE hybridrec_http_request_seconds histogram" in text
    assert re.search(
        r'hybridrec_http_request_seconds_count\{method="GET",route="/items/\{item_id\}",'
        r'service="testsvc",status="200"\} 2\.0',
        text,
    ), text
    assert 'route="unmatched",service="testsvc",status="404"' in text
    assert 'method="POST",route="unmatched",service="testsvc",status="413"' in text
    assert 'hybridrec_http_request_seconds_bucket{le="0.001"' in text


def test_each_app_has_its_own_metrics_registry() -> None:
    a, b = _build_app([]), _build_app([])
    with TestClient(a) as ca, TestClient(b) as cb:
        ca.get("/items/1")
        assert 'route="/items/{item_id}"' not in cb.get("/metrics").text


def test_docs_are_served_offline(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        resp = client.get(page)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/html")
        html = resp.text
        for cdn in ("cdn.", "jsdelivr", "unpkg"):
            assert cdn not in html, f"{page} loads from a CDN ({cdn})"
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
        assert assets, f"{page} references no local assets"
        for asset in assets:
            assert asset.startswith("/"), asset
            got = client.get(asset)
            assert got.status_code == 200, asset
            assert len(got.content) > 100, asset


def test_openapi_documents_the_error_model_and_ops(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Test service" and spec["info"]["version"] == "9.9.9"
    assert "/health/live" in spec["paths"] and "/metrics" in spec["paths"]
    assert {t["name"] for t in spec["tags"]} >= {"things", "ops"}
    assert spec["paths"]["/health/live"]["get"]["operationId"] == "testsvc_health_live"


def test_body_that_is_not_utf8_is_422_not_an_undocumented_400(client: TestClient) -> None:
    # Found by schema fuzzing: FastAPI answers 400 "There was an error parsing the body"
    # when the bytes are not UTF-8; 400 is not a documented response.
    for raw in (b'{"user_id": "\xe9"}', b"\x18\xc3I\xb5O\x9d", b"\xef\xbf"):
        resp = client.post("/query", content=raw, headers={"content-type": "application/json"})
        body = _error(resp, 422, "invalid_request")
        assert "UTF-8" in body["error"]["message"], body


def test_wrong_method_is_405_with_an_allow_header(lifecycle: list[str]) -> None:
    # Found by schema fuzzing: the shared error handler dropped the Allow header, and
    # Starlette's lists only the first route of a path served by several routes.
    app = _build_app(lifecycle)

    @app.get("/query", tags=["things"])
    async def query_get() -> dict[str, str]:
        return {}

    with TestClient(app) as client:
        resp = client.request("TRACE", "/query")
        body = _error(resp, 405, "method_not_allowed")
        assert resp.headers["allow"] == "GET, POST"
        assert "TRACE is not allowed on /query; use GET, POST" in body["error"]["message"]
        assert client.delete("/items/3").headers["allow"] == "GET"
