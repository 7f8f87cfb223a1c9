"""One of several processes serving an app on one port: ``python -m services.worker
FACTORY HOST PORT`` (started by ``hybridrec serve <service> --workers N``).

Each process binds the port itself with ``SO_REUSEPORT``, so the kernel spreads new
connections over the processes. uvicorn's own ``--workers`` shares one listening socket
instead: whichever worker is idle when a connection arrives takes it, and a client's few
keep-alive connections can all end up in one worker while the other cores idle (measured
with ``python -m bench.computed --combined``: one of two workers served every answer).
"""

from __future__ import annotations

import contextlib
import socket
import sys

import uvicorn


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def main(argv: list[str] | None = None) -> int:
    """Serve ``FACTORY`` (``module:function``) on ``HOST PORT`` until SIGTERM."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m services.worker FACTORY HOST PORT", file=sys.stderr)
        return 2
    factory, host, port = args[0], args[1], int(args[2])
    config = uvicorn.Config(
        factory, factory=True, host=host, port=port, access_log=False,
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    # Ctrl-C reaches every worker; uvicorn shuts down gracefully, then re-raises it.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listening_socket(host, port)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
