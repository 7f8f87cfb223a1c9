"""Client threads that keep sending gateway requests while a test breaks things, and waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Call:
    """One request the thread sent and what came back (status 0: no answer)."""

    kind: str
    start: float
    end: float
    status: int
    body: dict[str, Any] | None
    sent: dict[str, Any] | None = None
    error: str | None = None

    @property
    def elapsed(self) -> float:
        return self.end - self.start


class ClientThread(threading.Thread):
    """Sends ``next_request(i)`` one after the other until :meth:`finish` is called.

    ``next_request`` returns ``(kind, method, path, json)``. A request that gets no
    answer (the gateway is down or was killed mid-request) is recorded with status 0
    and retried as a new request after ``pause_s``: it is never counted as answered.
    """

    def __init__(
        self,
        base_url: str,
        next_request: Callable[[int], tuple[str, str, str, dict[str, Any] | None]],
        *,
        timeout_s: float = 15.0,
        pause_s: float = 0.0,
    ) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.next_request = next_request
        self.timeout_s = timeout_s
        self.pause_s = pause_s
        self.calls: list[Call] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        i = 0
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s) as client:
            while not self._halt.is_set():
                kind, method, path, body = self.next_request(i)
                i += 1
                start = time.monotonic()
                try:
                    r = client.request(method, path, json=body)
                    call = Call(kind, start, time.monotonic(), r.status_code, _json(r), body)
                except httpx.HTTPError as exc:
                    call = Call(kind, start, time.monotonic(), 0, None, body, repr(exc))
                    self._halt.wait(0.05)  # the gateway is down: do not spin
                with self._lock:
                    self.calls.append(call)
                if self.pause_s:
                    self._halt.wait(self.pause_s)

    def snapshot(self) -> list[Call]:
        """The calls so far (a copy)."""
        with self._lock:
            return list(self.calls)

    def wait_for(self, pred: Callable[[list[Call]], bool], timeout: float, what: str) -> None:
        """Wait until ``pred(calls)`` holds; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.snapshot()):
                return
            if not self.is_alive():
                raise AssertionError(f"the client thread died while waiting for {what}")
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def finish(self) -> list[Call]:
        """Stop after the request in flight; returns every call."""
        self._halt.set()
        self.join(self.timeout_s + 5)
        return self.snapshot()


def _json(r: httpx.Response) -> dict[str, Any] | None:
    try:
        value = r.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``pred()`` until it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_redis_check(urls: list[str], degraded: bool, timeout: float = 20) -> None:
    """Until every service's readiness (200) says Redis is ``ok``, or ``ok (degraded...)``."""
    deadline = time.monotonic() + timeout
    last: list[Any] = []
    while time.monotonic() < deadline:
        last = []
        for url in urls:
            r = httpx.get(f"{url}/health/ready", timeout=10)
            last.append((r.status_code, r.json().get("checks", {}).get("redis", "")))
        if all(s == 200 and c.startswith("ok") and ("degraded" in c) == degraded for s, c in last):
            return
        time.sleep(0.2)
    raise AssertionError(f"readiness never said redis degraded={degraded}: {last}")
