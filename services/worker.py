"""One of several processes serving an app on one port: ``python -m services.worker
FACTORY HOST PORT`` (started by ``hybridrec serve <service> --workers N``).

Each process binds the port itself with ``SO_REUSEPORT``, so the kernel spreads new
connections over the processes. uvicorn's own ``--workers`` shares one listening socket
instead: whichever worker is idle when a connection arrives takes it, and a client's few
keep-alive connections can all end up in one worker while the other cores idle (measured
with ``python -m bench.computed --combined``: one of two workers served every answer).

A worker starts listening only once its app says it is ready (``/health/ready`` answers
200, asked in process): a socket joins the port's group when it listens, and the kernel
would otherwise hand connections to a worker still loading its bundle while a readiness
probe, answered by another worker, says the port is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from typing import Any

import httpx
import uvicorn

log = logging.getLogger("hybridrec.worker")
READY_PATH = "/health/ready"
#: How long a worker waits for its app to be ready before it serves anyway (and its own
#: readiness says why it is not ready).
READY_TIMEOUT_S = 600.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not listening yet
    (asyncio listens on it when the server starts serving)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def wait_until_ready(app: Any, timeout_s: float = READY_TIMEOUT_S) -> bool:
    """Poll the ASGI app's readiness in process until it answers 200 (True) or time is up."""
    deadline = time.monotonic() + timeout_s
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(READY_PATH)).status_code == 200:
                    return True
            await asyncio.sleep(0.3)
    return False


class ReadyFirstServer(uvicorn.Server):
    """A uvicorn server that starts listening once the app is ready."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if not self.lifespan.should_exit and not await wait_until_ready(self.config.loaded_app):
            log.warning("not ready after %.0f s; serving anyway (see /health/ready)",
                        READY_TIMEOUT_S)  # fmt: skip

        async def started() -> None:
            """The lifespan has started already (above)."""

        self.lifespan.startup = started  # type: ignore[method-assign]
        await super().startup(sockets=sockets)


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
        ReadyFirstServer(config).run(sockets=[listening_socket(host, port)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
