"""The in-process clients map failures as the HTTP clients do (the gateway degrades alike)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from services.combined import local
from services.combined.local import LocalRanking, LocalRetrieval
from shared.contracts.errors import DependencyUnavailableError, NotFoundError
from shared.serving import timing


def _retrieval(engine: Any) -> LocalRetrieval:
    app = FastAPI()
    app.state.engine = engine
    app.state.load_error = None
    return LocalRetrieval(app, timeout_s=1.0)


def test_a_service_still_loading_is_unavailable_not_a_crash() -> None:
    client = _retrieval(None)
    with pytest.raises(DependencyUnavailableError, match=r"retrieval failed: .*still loading"):
        asyncio.run(client.item("1", timeout_s=1.0, request_id=None))
    ranking_app = FastAPI()
    ranking_app.state.engine = None
    ranking_app.state.load_error = "bundle.json is missing"
    ranking = LocalRanking(ranking_app, timeout_s=1.0)
    with pytest.raises(DependencyUnavailableError, match=r"bundle\.json is missing"):
        asyncio.run(ranking.rank(None, timeout_s=1.0))  # type: ignore[arg-type]


def test_a_callers_mistake_passes_through_and_a_bug_degrades(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _retrieval(object())

    def missing(engine: Any, item_id: str) -> Any:
        raise NotFoundError(f"item {item_id!r} is not in the catalogue")

    monkeypatch.setattr(local.items, "get_item", missing)
    with pytest.raises(NotFoundError, match="'42' is not in the catalogue"):
        asyncio.run(client.item("42", timeout_s=1.0, request_id=None))

    def broken(engine: Any, item_id: str) -> Any:
        raise KeyError("a bug")

    monkeypatch.setattr(local.items, "get_item", broken)
    with pytest.raises(DependencyUnavailableError, match="retrieval failed: KeyError"):
        asyncio.run(client.item("42", timeout_s=1.0, request_id=None))


def test_the_services_stages_are_timed_under_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _retrieval(object())

    def timed(engine: Any, item_id: str) -> Any:
        with timing.stage("lookup"):
            return {"item_id": item_id}

    monkeypatch.setattr(local.items, "get_item", timed)

    async def call() -> dict[str, float]:
        times, token = timing.collect()
        try:
            await client.item("7", timeout_s=1.0, request_id=None)
        finally:
            timing.finish(token)
        return times.durations

    durations = asyncio.run(call())
    assert set(durations) == {"retrieval", "retrieval.lookup"}, durations
    assert durations["retrieval"] >= durations["retrieval.lookup"] > 0
