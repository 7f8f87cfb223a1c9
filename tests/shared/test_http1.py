"""shared.serving.http1.ConnectionPool against small asyncio servers of the test's own (loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from shared.serving.http1 import ConnectError, ConnectionPool, HTTPError
from tests.support.redis_server import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]], Awaitable[None]]


def _ok(body: bytes = b'{"ok":true}', extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{extra}\r\n"
    ).encode() + body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return lines[0], body


def _run(
    handler: Handler,
    body: Callable[[ConnectionPool, dict[str, Any]], Awaitable[Any]],
    **pool_kw: Any,
) -> tuple[Any, dict[str, Any]]:
    state: dict[str, Any] = {"connections": 0, "requests": [], "open": 0, "max_open": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["connections"] += 1
        state["open"] += 1
        state["max_open"] = max(state["max_open"], state["open"])
        try:
            await handler(reader, writer, state)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            state["open"] -= 1
            writer.close()

    async def main() -> Any:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = ConnectionPool(f"http://127.0.0.1:{port}", **pool_kw)
        try:
            return await asyncio.wait_for(body(pool, state), 10)
        finally:
            await pool.close()
            server.close()

    return asyncio.run(main()), state


async def _keep_alive(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, Any]
) -> None:
    while True:
        line, body = await _read_request(reader)
        state["requests"].append((line, body))
        if line.startswith("GET /slow"):
            await asyncio.sleep(0.5)
            writer.write(_ok(b'{"late":true}'))
        else:
            writer.write(_ok(b'{"path":"%s"}' % line.split()[1].encode()))
        await writer.drain()


def test_keep_alive_reuses_one_connection_and_sends_the_body() -> None:
    async def body(pool: ConnectionPool, state: dict[str, Any]) -> list[Any]:
        out = []
        for i in range(5):
            resp = await pool.request(
                "POST", f"/p{i}", body=b'{"i":%d}' % i, headers=[("x-request-id", "r1")]
            )
            out.append((resp.status, resp.body, resp.header("Content-Type")))
        return out

    out, state = _run(_keep_alive, body)
    assert [o[0] for o in out] == [200] * 5
    assert out[3][1] == b'{"path":"/p3"}' and out[3][2] == "application/json"
    assert state["connections"] == 1
    assert state["requests"][2] == ("POST /p2 HTTP/1.1", b'{"i":2}')


def test_query_params_are_encoded() -> None:
    async def body(pool: ConnectionPool, state: dict[str, Any]) -> bytes:
        return (await pool.request("GET", "/q", params={"q": "toy story", "k": 5})).body

    out, _ = _run(_keep_alive, body)
    assert out == b'{"path":"/q?q=toy+story&k=5"}'


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def one_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, Any]
    ) -> None:
        await _read_request(reader)
        writer.write(_ok())  # keep-alive promised, then closed: like an idle timeout
        await writer.drain()

    async def body(pool: ConnectionPool, state: dict[str, Any]) -> list[int]:
        statuses = []
        for _ in range(3):
            statuses.append((await pool.request("GET", "/x")).status)
            await asyncio.sleep(0.05)
        return statuses

    out, state = _run(one_per_connection, body)
    assert out == [200, 200, 200] and state["connections"] == 3


def test_a_stale_connection_is_retried_once_on_a_new_one() -> None:
    async def close_second_silently(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, Any]
    ) -> None:
        if state["connections"] == 1:  # answer once, then drop the next request unanswered
            await _read_request(reader)
            writer.write(_ok())
            await writer.drain()
            await _read_request(reader)
            return
        while True:
            await _read_request(reader)
            writer.write(_ok(b'{"second":true}'))
            await writer.drain()

    async def body(pool: ConnectionPool, state: dict[str, Any]) -> list[bytes]:
        return [(await pool.request("GET", "/x")).body for _ in range(2)]

    out, state = _run(close_second_silently, body)
    assert out == [b'{"ok":true}', b'{"second":true}'] and state["connections"] == 2


def test_chunked_and_http10_bodies() -> None:
    async def chunked(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, Any]
    ) -> None:
        line, _ = await _read_request(reader)
        if "chunked" in line:
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b'4\r\n{"a"\r\n5;ext=1\r\n:[1]}\r\n0\r\nx-trailer: 1\r\n\r\n'
            )
            await writer.drain()
            await chunked(reader, writer, state)
        else:  # HTTP/1.0, no length: the body ends when the connection does
            writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil eof")
            await writer.drain()

    async def body(pool: ConnectionPool, state: dict[str, Any]) -> list[bytes]:
        a = await pool.request("GET", "/chunked")
        b = await pool.request("GET", "/chunked")
        c = await pool.request("GET", "/old")
        return [a.body, b.body, c.body]

    out, state = _run(chunked, body)
    assert out == [b'{"a":[1]}', b'{"a":[1]}', b"until eof"]
    assert state["connections"] == 1


def test_a_cancelled_request_never_hands_its_late_answer_to_the_next() -> None:
    async def body(pool: ConnectionPool, state: dict[str, Any]) -> bytes:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await pool.request("GET", "/slow")
        return (await pool.request("GET", "/fast")).body

    out, state = _run(_keep_alive, body)
    assert out == b'{"path":"/fast"}' and state["connections"] == 2


def test_max_connections_bounds_concurrency() -> None:
    async def body(pool: ConnectionPool, state: dict[str, Any]) -> list[int]:
        resps = await asyncio.gather(*(pool.request("GET", f"/{i}") for i in range(10)))
        return [r.status for r in resps]

    out, state = _run(_keep_alive, body, max_connections=2)
    assert out == [200] * 10 and state["max_open"] <= 2


def test_refused_and_garbage() -> None:
    async def refused() -> None:
        pool = ConnectionPool(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(ConnectError, match="cannot connect"):
            await pool.request("GET", "/")

    asyncio.run(refused())

    async def garbage(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, Any]
    ) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async def body(pool: ConnectionPool, state: dict[str, Any]) -> None:
        with pytest.raises(HTTPError, match="not an HTTP"):
            await pool.request("GET", "/")

    _run(garbage, body)
    with pytest.raises(ValueError, match="only http"):
        ConnectionPool("https://example.org")
