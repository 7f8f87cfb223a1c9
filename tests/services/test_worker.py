"""services.worker: several processes can listen on one port, and the kernel spreads
connections over them."""

from __future__ import annotations

import socket

import pytest

from harness.processes import free_port
from services.worker import listening_socket, main


def test_two_listeners_share_a_port_and_both_get_connections() -> None:
    port = free_port()
    a, b = listening_socket("127.0.0.1", port), listening_socket("127.0.0.1", port)
    try:
        accepted = {"a": 0, "b": 0}
        for sock in (a, b):
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
