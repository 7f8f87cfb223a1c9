"""services.worker: several processes can listen on one port, and the kernel spreads
connections over them."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from harness.processes import free_port
from services.worker import ReadyFirstServer, listening_socket, main


def test_two_listeners_share_a_port_and_both_get_connections() -> None:
    port = free_port()
    a, b = listening_socket("127.0.0.1", port), listening_socket("127.0.0.1", port)
    try:
        accepted = {"a": 0, "b": 0}
        for sock in (a, b):
            sock.listen(128)  # what asyncio does when the worker starts serving
            sock.settimeout(0.0)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        for name, sock in (("a", a), ("b", b)):
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                accepted[name] += 1
        for c in clients:
            c.close()
        assert accepted["a"] + accepted["b"] == 64, accepted
        # Spread by a hash of each connection's ports: both get a share.
        assert accepted["a"] >= 8 and accepted["b"] >= 8, accepted
    finally:
        a.close()
        b.close()


def test_a_wrong_command_line_says_how_to_call_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services.gateway.app:create_app"]) == 2
    assert "usage: python -m services.worker FACTORY HOST PORT" in capsys.readouterr().err


def _app_ready_after(delay_s: float) -> tuple[Any, dict[str, float]]:
    """A raw ASGI app whose /health/ready answers 503 until ``delay_s`` after its startup."""
    state: dict[str, float] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    state["started"] = time.monotonic()
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        ready = time.monotonic() - state["started"] >= delay_s
        if ready:
            state.setdefault("ready", time.monotonic())
        await send({"type": "http.response.start", "status": 200 if ready else 503,
                    "headers": [(b"content-type", b"text/plain")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"ok" if ready else b"loading"})

    return app, state


def test_a_worker_listens_only_once_its_app_is_ready() -> None:
    app, state = _app_ready_after(1.0)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")  # fmt: skip
    server = ReadyFirstServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening_socket("127.0.0.1", port)]}, daemon=True
    )
    thread.start()
    refused, first_ok = 0, None
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and first_ok is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    first_ok = time.monotonic()
            except ConnectionRefusedError:
                refused += 1
                time.sleep(0.05)
        assert first_ok is not None, "the worker never listened"
        assert "ready" in state and first_ok >= state["ready"], state
        assert refused > 5, f"connections were refused only {refused} times while loading"
        assert httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
    finally:
        server.should_exit = True
        thread.join(10)
