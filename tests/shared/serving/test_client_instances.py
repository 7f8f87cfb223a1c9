"""ServiceClient over several instances: round-robin, failover, no retry of state changes,
and one host name resolving to several addresses (real uvicorn servers on loopback)."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from typing import Any, TypeVar

import aiohttp
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from harness.processes import app_in_thread, free_port
from shared.contracts.errors import DependencyUnavailableError
from shared.serving.clients import ServiceClient, split_urls

T = TypeVar("T")


def _app(name: str, calls: Counter[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/who")
    async def who() -> dict[str, str]:
        calls[name] += 1
        return {"name": name}

    @app.post("/change")
    async def change() -> dict[str, str]:
        calls[name] += 1
        return {"name": name}

    @app.get("/flaky")
    async def flaky() -> JSONResponse:
        calls[name] += 1
        if name == "sick":
            return JSONResponse({"error": {"code": "boom", "message": "sick"}}, status_code=500)
        return JSONResponse({"name": name})

    return app


class Servers:
    """uvicorn servers in threads, each with a name and a call counter."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._stack = ExitStack()

    def start(self, name: str, host: str = "127.0.0.1", port: int | None = None) -> str:
        return self._stack.enter_context(app_in_thread(_app(name, self.calls), host, port))

    def stop(self) -> None:
        self._stack.close()


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    try:
        yield s
    finally:
        s.stop()


def _run(urls: str, body: Callable[[ServiceClient], Awaitable[T]]) -> T:
    async def main() -> T:
        client = ServiceClient("upstream", urls, timeout_s=2.0, cooldown_s=30.0)
        try:
            return await asyncio.wait_for(body(client), 20)
        finally:
            await client.close()

    return asyncio.run(main())


async def _many(client: ServiceClient, n: int, path: str = "/who") -> list[str]:
    return [(await client.request("GET", path))["name"] for _ in range(n)]


def test_split_urls() -> None:
    assert split_urls(" http://a:1/, http://b:2 ,") == ["http://a:1", "http://b:2"]
    with pytest.raises(ValueError, match="no base URL"):
        split_urls(" , ")


def test_calls_alternate_between_healthy_instances(servers: Servers) -> None:
    a, b = servers.start("a"), servers.start("b")
    names = _run(f"{a},{b}", lambda c: _many(c, 10))
    assert Counter(names) == Counter({"a": 5, "b": 5})


def test_a_dead_instance_is_skipped_and_an_idempotent_call_retried(servers: Servers) -> None:
    dead, live = f"http://127.0.0.1:{free_port()}", servers.start("live")
    names = _run(f"{dead},{live}", lambda c: _many(c, 8))
    assert names == ["live"] * 8  # the first call failed over; later ones skip the dead one


def test_a_5xx_is_retried_on_another_instance(servers: Servers) -> None:
    sick, well = servers.start("sick"), servers.start("well")
    names = _run(f"{sick},{well}", lambda c: _many(c, 4, "/flaky"))
    assert names == ["well"] * 4
    assert servers.calls["sick"] == 1  # marked down after its 500, not asked again


def test_a_state_change_is_never_retried(servers: Servers) -> None:
    dead, live = f"http://127.0.0.1:{free_port()}", servers.start("live")

    async def body(client: ServiceClient) -> None:
        await client.request("POST", "/change", json={}, idempotent=False)

    with pytest.raises(DependencyUnavailableError, match="unreachable"):
        _run(f"{dead},{live}", body)  # round-robin starts with the dead one
    assert servers.calls["live"] == 0


def test_every_instance_down_is_dependency_unavailable() -> None:
    urls = f"http://127.0.0.1:{free_port()},http://127.0.0.1:{free_port()}"
    with pytest.raises(DependencyUnavailableError, match="unreachable"):
        _run(urls, lambda c: _many(c, 1))


def test_a_host_name_with_several_addresses_is_several_instances(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service name (as Docker or Kubernetes DNS gives) resolving to two loopback addresses."""
    port = free_port()
    servers.start("one", host="127.0.0.2", port=port)
    servers.start("two", host="127.0.0.3", port=port)
    real = asyncio.base_events.BaseEventLoop.getaddrinfo

    async def fake(self: Any, host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "ranking.svc.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in ("127.0.0.3", "127.0.0.2")
            ]
        return await real(self, host, *args, **kwargs)

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "getaddrinfo", fake)
    names = _run(f"http://ranking.svc.test:{port}", lambda c: _many(c, 6))
    assert Counter(names) == Counter({"one": 3, "two": 3})


def test_a_connect_timeout_marks_the_instance_down_and_retries(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed container's address drops packets: the connect times out, the call goes on."""
    live = servers.start("live")
    gone = f"http://127.0.0.1:{free_port()}"
    real = ServiceClient._exchange

    async def exchange(self: ServiceClient, instance: Any, *args: Any, **kw: Any) -> Any:
        if instance.url == gone:
            raise aiohttp.ConnectionTimeoutError("connect timed out")
        return await real(self, instance, *args, **kw)

    monkeypatch.setattr(ServiceClient, "_exchange", exchange)
    names = _run(f"{gone},{live}", lambda c: _many(c, 4))
    assert names == ["live"] * 4 and servers.calls["live"] == 4
