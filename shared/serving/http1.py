"""A small pooled HTTP/1.1 keep-alive client on asyncio streams (loopback JSON calls).

Why not httpx: on the gateway's hot path the async httpx client cost several
times the CPU of this client per request (``bench/client_cost.py`` measures it;
the figures are in :mod:`shared.serving.clients`). This client does only what the
internal calls need: one host, ``Content-Length`` or chunked bodies, keep-alive
connections reused LIFO, at most ``max_connections`` open at once. No TLS, no
redirects, no cookies, no proxies, no compression, no HTTP/2.

A connection that the server closed while idle (uvicorn closes idle keep-alive
connections after 5 s) is noticed before reuse; if a reused connection still
fails before a single response byte arrives, the request is sent once more on a
new connection (the same rule browsers and httpcore follow). A request that is
cancelled (e.g. by ``asyncio.timeout``) closes its connection, so a late answer
never reaches the next caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

MAX_HEAD_BYTES = 64 * 1024


class HTTPError(Exception):
    """The exchange failed: unreachable, closed early, or not valid HTTP/1.1."""


class ConnectError(HTTPError):
    """The connection could not be opened (refused, unreachable, timed out)."""


@dataclass(slots=True)
class Response:
    """A complete response: status, lower-cased headers and the body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header's value (case-insensitive name)."""
        return self.headers.get(name.lower(), default)


class _Conn:
    __slots__ = ("reader", "reused", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()


class _StaleConnection(HTTPError):
    """A reused connection closed before answering (safe to retry once)."""


class ConnectionPool:
    """Keep-alive connections to one ``http://host:port``.

    Args:
        base_url: ``http://host:port`` (a path prefix is kept and prepended).
        max_connections: Connections open at once; further callers wait for one.
        connect_timeout_s: Limit on opening one connection.
    """

    def __init__(
        self, base_url: str, *, max_connections: int = 64, connect_timeout_s: float = 0.5
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host[:port] URLs are supported, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        host_header = self.host if ":" not in self.host else f"[{self.host}]"
        self._host_line = f"Host: {host_header}:{self.port}\r\n".encode("latin-1")
        self.connect_timeout_s = connect_timeout_s
        self._idle: deque[_Conn] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=MAX_HEAD_BYTES
                )
        except TimeoutError:
            raise
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                conn.reused = True
                return conn
            conn.close()
        return None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """Send one request and read the whole response.

        Raises:
            ConnectError: The server cannot be reached.
            HTTPError: The connection broke or the answer is not HTTP/1.1.
        """
        if self._closed:
            raise HTTPError("the connection pool is closed")
        target = self.prefix + path
        if params:
            target += ("&" if "?" in target else "?") + urlencode(params, doseq=True)
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._host_line]
        for name, value in headers:
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        if body is not None:
            head.append(
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode(
                    "latin-1"
                )
            )
            head.append(body)
        else:
            head.append(b"\r\n" if method in ("GET", "HEAD") else b"Content-Length: 0\r\n\r\n")
        payload = b"".join(head)
        async with self._slots:
            conn = self._take_idle()
            for _attempt in range(2):
                if conn is None:
                    conn = await self._connect()
                try:
                    resp, keep = await self._exchange(conn, payload, method)
                except _StaleConnection:
                    conn.close()
                    conn = None
                    continue
                except BaseException:
                    conn.close()
                    raise
                if keep and not self._closed:
                    self._idle.append(conn)
                else:
                    conn.close()
                return resp
            raise HTTPError(f"{self.host}:{self.port} closed the connection twice")

    async def _exchange(self, conn: _Conn, payload: bytes, method: str) -> tuple[Response, bool]:
        reader = conn.reader
        conn.writer.write(payload)
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if conn.reused and not exc.partial:
                raise _StaleConnection("closed before answering") from exc
            raise HTTPError("the server closed the connection before answering") from exc
        except asyncio.LimitOverrunError as exc:
            raise HTTPError("response head larger than 64 KiB") from exc
        except (ConnectionError, OSError) as exc:
            if conn.reused:
                raise _StaleConnection(str(exc)) from exc
            raise HTTPError(f"connection broken: {exc}") from exc
        status, headers, keep = _parse_head(raw_head)
        try:
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                body = b""
            elif "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                body = await _read_chunked(reader)
            else:
                body = await reader.read()
                keep = False
        except asyncio.IncompleteReadError as exc:
            raise HTTPError("the connection closed in the middle of the body") from exc
        except (ConnectionError, OSError, ValueError) as exc:
            raise HTTPError(f"broken response body: {exc}") from exc
        return Response(status, headers, body), keep

    async def close(self) -> None:
        """Close every idle connection; connections in use close when their call ends."""
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            conn.close()
            with contextlib.suppress(ConnectionError, OSError):
                await conn.writer.wait_closed()


def _parse_head(raw: bytes) -> tuple[int, dict[str, str], bool]:
    lines = raw.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
        raise HTTPError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
    try:
        status = int(status_line[1])
    except ValueError as exc:
        raise HTTPError(f"bad status line: {lines[0][:80]!r}") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HTTPError(f"bad header line: {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    conn_opts = headers.get("connection", "").lower()
    keep = "close" not in conn_opts and (status_line[0] != "HTTP/1.0" or "keep-alive" in conn_opts)
    return status, headers, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
