"""Per-request stage timings, reported in the ``Server-Timing`` response header.

The service middleware opens a :class:`StageTimes` for each request
(:func:`collect`); code on the hot path wraps its stages in :func:`stage`::

    with stage("ann"):
        ids, scores = index.query(vec, k)

    @stage("features")
    def features(...): ...

Outside a request (no collector open: tests, training, scripts) ``stage`` costs a
context-variable lookup and does nothing else. Inside one it costs two
``perf_counter`` calls and a dict update (well under a microsecond). Durations
of a name used more than once in a request add up. Timings of a dependency's
answer (its own ``Server-Timing`` header) are folded in under a prefix with
:func:`add_remote`, so the gateway's header shows e.g. ``retrieval.ann;dur=0.8``.
The collector is a mutable object shared by reference, so stages timed in a
worker thread (``run_in_threadpool`` copies the context) land in the same request.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

HEADER = "server-timing"
_current: ContextVar[StageTimes | None] = ContextVar("hybridrec_stage_times", default=None)


class StageTimes:
    """Stage durations of one request, in seconds, in the order first seen."""

    __slots__ = ("durations", "last_end", "start")

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.durations: dict[str, float] = {}
        self.last_end: float | None = None

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to stage ``name``."""
        self.durations[name] = self.durations.get(name, 0.0) + seconds

    def header(self, **extra: float) -> str:
        """The ``Server-Timing`` value: ``name;dur=<ms>`` entries, comma-separated."""
        items = {**self.durations, **extra}
        return ", ".join(f"{name};dur={sec * 1000.0:.3f}" for name, sec in items.items())


class stage:
    """Time a block (``with stage("x"):``) or a function (``@stage("x")``, sync or async)."""

    __slots__ = ("_t0", "_times", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._times: StageTimes | None = None
        self._t0 = 0.0

    def __enter__(self) -> stage:
        self._times = _current.get()
        if self._times is not None:
            self._t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        times = self._times
        if times is not None:
            end = time.perf_counter()
            times.add(self.name, end - self._t0)
            times.last_end = end
            self._times = None

    def __call__(self, fn: F) -> F:
        name = self.name
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with stage(name):
                    return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with stage(name):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def collect() -> tuple[StageTimes, Token[StageTimes | None]]:
    """Open a collector for the current request; pass the token to :func:`finish`."""
    times = StageTimes()
    return times, _current.set(times)


def finish(token: Token[StageTimes | None]) -> None:
    """Close the collector opened by :func:`collect`."""
    _current.reset(token)


def current() -> StageTimes | None:
    """The open collector, or None outside a timed request."""
    return _current.get()


def parse_header(value: str) -> dict[str, float]:
    """``Server-Timing`` entries with a ``dur`` as ``{name: seconds}`` (others skipped)."""
    out: dict[str, float] = {}
    for entry in value.split(","):
        parts = [p.strip() for p in entry.split(";")]
        if not parts[0]:
            continue
        for param in parts[1:]:
            key, _, raw = param.partition("=")
            if key.strip().lower() == "dur":
                with contextlib.suppress(ValueError):
                    out[parts[0]] = out.get(parts[0], 0.0) + float(raw.strip().strip('"')) / 1000.0
                break
    return out


def add_remote(prefix: str, header_value: str | None) -> None:
    """Fold a dependency's ``Server-Timing`` into the open collector as ``prefix.name``."""
    times = _current.get()
    if times is None or not header_value:
        return
    for name, sec in parse_header(header_value).items():
        times.add(f"{prefix}.{name}", sec)


@contextlib.contextmanager
def nested(prefix: str) -> Iterator[None]:
    """Time an in-process call to another service as if it had answered over HTTP.

    The block is timed as stage ``prefix``, and the stages it times itself land under
    ``prefix.name`` (as :func:`add_remote` folds a dependency's header), so one process
    hosting all three services reports the same ``Server-Timing`` names as the split.
    """
    outer = _current.get()
    if outer is None:
        yield
        return
    inner = StageTimes()
    token = _current.set(inner)
    try:
        yield
    finally:
        _current.reset(token)
        end = time.perf_counter()
        outer.add(prefix, end - inner.start)
        for name, sec in inner.durations.items():
            outer.add(f"{prefix}.{name}", sec)
        outer.last_end = end
