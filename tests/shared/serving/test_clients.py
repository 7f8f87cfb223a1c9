"""ServiceClient against a real uvicorn server: JSON, error mapping, refused, timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from harness.processes import app_in_thread, free_port
from shared.contracts.errors import DependencyUnavailableError, NotFoundError, ValidationError
from shared.contracts.internal_v1 import (
    CandidateColumns,
    CandidatesRequest,
    CandidatesResponse,
    RankedItem,
    RankRequest,
    RankResponse,
)
from shared.serving import timing
from shared.serving.app_factory import create_app
from shared.serving.clients import (
    RankingClient,
    RetrievalClient,
    ServiceClient,
    UpstreamClientError,
)

T = TypeVar("T")
HANG_GUARD_S = 10.0  # far above every timeout used here, far below the slow endpoints


def _app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = create_app(
        service="fake",
        title="fake",
        description="fake upstream",
        version="1",
        lifespan=lifespan,
        max_body_bytes=100_000,
    )

    @app.get("/ok")
    async def ok(request: Request, n: int = 1) -> dict[str, Any]:
        return {"n": n, "rid": request.headers.get("x-request-id")}

    @app.get("/missing")
    async def missing() -> dict[str, str]:
        raise NotFoundError("item 99 is not in the catalogue")

    @app.post("/strict")
    async def strict(body: CandidatesRequest) -> dict[str, int]:
        return {"k": body.k}

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("kaboom")

    @app.get("/teapot")
    async def teapot() -> Response:
        return PlainTextResponse("short and stout", status_code=418)

    @app.get("/not-json")
    async def not_json() -> Response:
        return PlainTextResponse("hello, not json")

    @app.delete("/empty")
    async def empty() -> Response:
        return Response(status_code=204)

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/slow")
    async def slow(request: Request) -> dict[str, str]:
        for _ in range(600):  # up to 30 s, unless the caller gives up first
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
        return {"status": "late"}

    @app.get("/drip")
    async def drip() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b'{"parts": ['
            for _ in range(300):  # a byte every 0.1 s for 30 s: no single read times out
                await asyncio.sleep(0.1)
                yield b" "
            yield b"]}"

        return StreamingResponse(body(), media_type="application/json")

    @app.post("/v1/candidates")
    async def candidates(req: CandidatesRequest) -> CandidatesResponse:
        ids = list(range(1, req.k + 1))
        columns = CandidateColumns(
            item_ids=[f"i{i}" for i in ids],
            scores=[1.0 / i for i in ids],
            sources=["content"] * len(ids),
            titles=[f"t{i}" for i in ids],
        )
        return CandidatesResponse(
            user_id=req.user_id,
            columns=columns,
            history=req.history,
            model_version="v-test",
            cache="miss",
        )

    @app.post("/v1/rank")
    async def rank(req: RankRequest) -> RankResponse:
        ordered = sorted(req.columns.item_ids, reverse=True)
        return RankResponse(
            items=[
                RankedItem(item_id=c, score=float(c[1:]), rank=i + 1)
                for i, c in enumerate(ordered)
            ],
            model_version="v-test",
        )

    return app


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with app_in_thread(_app()) as url:
        yield url


def _call(url: str, body: Callable[[ServiceClient], Awaitable[T]], *, timeout_s: float = 2.0) -> T:
    async def main() -> T:
        client = ServiceClient("upstream", url, timeout_s=timeout_s)
        try:
            return await asyncio.wait_for(body(client), HANG_GUARD_S)
        finally:
            await client.close()

    return asyncio.run(main())


def test_2xx_json_with_params_and_request_id(server_url: str) -> None:
    got = _call(server_url, lambda c: c.request("GET", "/ok", params={"n": 5}, request_id="rid-42"))
    assert got == {"n": 5, "rid": "rid-42"}


def test_trailing_slash_in_base_url(server_url: str) -> None:
    assert _call(server_url + "/", lambda c: c.request("GET", "/ok")) == {"n": 1, "rid": None}


def test_204_returns_none(server_url: str) -> None:
    assert _call(server_url, lambda c: c.request("DELETE", "/empty")) is None


def test_404_is_not_found_with_the_upstream_message(server_url: str) -> None:
    with pytest.raises(NotFoundError, match="item 99 is not in the catalogue"):
        _call(server_url, lambda c: c.request("GET", "/missing"))
    with pytest.raises(NotFoundError, match="no such path"):
        _call(server_url, lambda c: c.request("GET", "/no/such/path"))


def test_422_is_validation_error_naming_the_field(server_url: str) -> None:
    with pytest.raises(ValidationError, match=r"^k:") as info:
        _call(server_url, lambda c: c.request("POST", "/strict", json={"k": "many"}))
    assert info.value.http_status == 422


def test_500_is_dependency_unavailable(server_url: str) -> None:
    with pytest.raises(DependencyUnavailableError, match="upstream answered 500") as info:
        _call(server_url, lambda c: c.request("GET", "/boom"))
    assert info.value.http_status == 503
    assert info.value.details == {"dependency": "upstream"}
    assert "kaboom" not in info.value.message


def test_other_4xx_keeps_its_status(server_url: str) -> None:
    with pytest.raises(UpstreamClientError, match="short and stout") as info:
        _call(server_url, lambda c: c.request("GET", "/teapot"))
    assert info.value.http_status == 418


def test_2xx_that_is_not_json_is_dependency_unavailable(server_url: str) -> None:
    with pytest.raises(DependencyUnavailableError, match="not JSON"):
        _call(server_url, lambda c: c.request("GET", "/not-json"))


def test_connection_refused_is_dependency_unavailable() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DependencyUnavailableError, match="unreachable") as info:
        _call(closed, lambda c: c.request("GET", "/ok"))
    assert closed in info.value.message
    assert info.value.details == {"dependency": "upstream"}


def test_slow_answer_times_out(server_url: str) -> None:
    start = time.monotonic()
    with pytest.raises(DependencyUnavailableError, match=r"did not answer within 0\.300 s"):
        _call(server_url, lambda c: c.request("GET", "/slow", timeout_s=0.3))
    # generous bound: the endpoint would take 30 s; this only proves we did not wait for it
    assert time.monotonic() - start < HANG_GUARD_S


def test_client_default_timeout_applies(server_url: str) -> None:
    with pytest.raises(DependencyUnavailableError, match=r"within 0\.400 s"):
        _call(server_url, lambda c: c.request("GET", "/slow"), timeout_s=0.4)


def test_dripping_answer_times_out_on_the_whole_budget(server_url: str) -> None:
    """Bytes arrive every 0.1 s, so only a total deadline (not per-read) stops it."""
    start = time.monotonic()
    with pytest.raises(DependencyUnavailableError, match="did not answer within"):
        _call(server_url, lambda c: c.request("GET", "/drip", timeout_s=0.5))
    assert time.monotonic() - start < HANG_GUARD_S  # the body would take 30 s


def test_ready(server_url: str) -> None:
    assert _call(server_url, lambda c: c.ready()) is True
    assert _call(f"http://127.0.0.1:{free_port()}", lambda c: c.ready()) is False
    assert _call(server_url + "/nothing-here", lambda c: c.ready()) is False


def test_typed_retrieval_and_ranking_clients(server_url: str) -> None:
    async def main() -> tuple[CandidatesResponse, RankResponse]:
        retrieval = RetrievalClient("retrieval", server_url, timeout_s=5.0)
        ranking = RankingClient("ranking", server_url, timeout_s=5.0)
        try:
            cands = await retrieval.candidates(
                CandidatesRequest(user_id="3", history=[5, "sku-6"], k=4), timeout_s=5.0,
                request_id="r1",
            )
            ranked = await ranking.rank(
                RankRequest(user_id="3", history=["5", "sku-6"], columns=cands.columns),
                timeout_s=5.0,
            )
            return cands, ranked
        finally:
            await retrieval.close()
            await ranking.close()

    cands, ranked = asyncio.run(main())
    assert isinstance(cands, CandidatesResponse)
    assert cands.columns.item_ids == ["i1", "i2", "i3", "i4"] and cands.columns.titles[0] == "t1"
    # a JSON number is read as its text
    assert cands.history == ["5", "sku-6"] and cands.user_id == "3"
    assert cands.cache == "miss" and cands.model_version == "v-test"
    assert [r.item_id for r in ranked.items] == ["i4", "i3", "i2", "i1"]
    assert [r.rank for r in ranked.items] == [1, 2, 3, 4]


def test_call_stages_and_the_dependency_server_timing_are_recorded(server_url: str) -> None:
    async def main() -> timing.StageTimes:
        retrieval = RetrievalClient("retrieval", server_url, timeout_s=5.0)
        times, token = timing.collect()
        try:
            await retrieval.candidates(CandidatesRequest(user_id=3, k=4), timeout_s=5.0)
            await retrieval.request("GET", "/ok")
        finally:
            timing.finish(token)
            await retrieval.close()
        return times

    times = asyncio.run(main())
    # the call itself, the JSON codec, and the upstream's own Server-Timing under its name
    assert {"retrieval", "codec", "retrieval.total"} <= set(times.durations)


def test_a_request_whose_deadline_passed_is_dropped_unstarted(server_url: str) -> None:
    past = {"x-hybridrec-deadline": f"{time.time() - 1:.3f}"}
    with pytest.raises(DependencyUnavailableError, match="answered 503") as info:
        _call(server_url, lambda c: c.send("GET", "/ok", headers=past, idempotent=False))
    assert getattr(info.value, "upstream", None)[:2] == (503, "deadline_exceeded")
    # the client's own calls carry a deadline in the future, so they are served
    assert _call(server_url, lambda c: c.request("GET", "/ok", params={"n": 2}))["n"] == 2
