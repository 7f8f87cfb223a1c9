"""shared.serving.timing: stages add up per request, none outside one, headers round-trip."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from shared.serving import timing
from shared.serving.timing import stage


def test_stages_outside_a_request_do_nothing() -> None:
    assert timing.current() is None
    with stage("ann"):
        pass

    @stage("f")
    def f(x: int) -> int:
        return x + 1

    assert f(1) == 2
    assert timing.current() is None


def test_stages_add_up_and_keep_first_seen_order() -> None:
    times, token = timing.collect()
    try:
        with stage("cache"):
            pass
        with stage("ann"):
            pass
        with stage("cache"):
            pass
    finally:
        timing.finish(token)
    assert list(times.durations) == ["cache", "ann"]
    assert all(v >= 0 for v in times.durations.values())
    assert times.last_end is not None
    assert timing.current() is None


def test_a_stage_that_raises_is_still_recorded() -> None:
    times, token = timing.collect()
    try:
        with pytest.raises(ValueError), stage("boom"):
            raise ValueError("x")
    finally:
        timing.finish(token)
    assert "boom" in times.durations


def test_decorates_sync_and_async_functions() -> None:
    @stage("sync")
    def double(x: int) -> int:
        return 2 * x

    @stage("async")
    async def triple(x: int) -> int:
        await asyncio.sleep(0)
        return 3 * x

    async def request() -> tuple[timing.StageTimes, int, int]:
        times, token = timing.collect()
        try:
            return times, double(2), await triple(2)
        finally:
            timing.finish(token)

    times, a, b = asyncio.run(request())
    assert (a, b) == (4, 6)
    assert set(times.durations) == {"sync", "async"}


def test_concurrent_requests_keep_their_own_stages() -> None:
    async def request(name: str) -> timing.StageTimes:
        times, token = timing.collect()
        try:
            with stage(name):
                await asyncio.sleep(0.01)
            return times
        finally:
            timing.finish(token)

    async def both() -> list[timing.StageTimes]:
        return list(await asyncio.gather(request("a"), request("b")))

    a, b = asyncio.run(both())
    assert list(a.durations) == ["a"] and list(b.durations) == ["b"]


def test_a_worker_thread_with_the_copied_context_reports_into_the_request() -> None:
    times, token = timing.collect()
    try:
        ctx = contextvars.copy_context()  # what run_in_threadpool does

        def score() -> None:
            with stage("score"):
                pass

        worker = threading.Thread(target=lambda: ctx.run(score))
        worker.start()
        worker.join()
    finally:
        timing.finish(token)
    assert "score" in times.durations


def test_header_and_parse_round_trip() -> None:
    times = timing.StageTimes()
    times.add("ann", 0.0008)
    times.add("query_tower", 0.0021)
    value = times.header(total=0.005)
    assert value == "ann;dur=0.800, query_tower;dur=2.100, total;dur=5.000"
    parsed = timing.parse_header(value)
    assert parsed == pytest.approx({"ann": 0.0008, "query_tower": 0.0021, "total": 0.005})


def test_parse_skips_entries_without_a_duration_and_bad_numbers() -> None:
    parsed = timing.parse_header('miss, db;desc="x";dur=1.5, bad;dur=abc, , cpu;DUR="2"')
    assert parsed == pytest.approx({"db": 0.0015, "cpu": 0.002})


def test_add_remote_prefixes_a_dependency_stages() -> None:
    times, token = timing.collect()
    try:
        timing.add_remote("retrieval", "ann;dur=0.8, total;dur=3")
        timing.add_remote("retrieval", None)
    finally:
        timing.finish(token)
    assert times.durations == pytest.approx({"retrieval.ann": 0.0008, "retrieval.total": 0.003})
    timing.add_remote("retrieval", "ann;dur=1")  # no request open: ignored
