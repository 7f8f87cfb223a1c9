"""The gateway's warm-up loop: readiness waits for retrieval's path, never for ranking's."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from services.gateway.core import GatewayCore
from services.gateway.warmup import Warmth, keep_warm
from shared.contracts.public_v1 import RecommendationRequest, Recommendations


class _Dep:
    def __init__(self, up: bool) -> None:
        self.up = up
        self.health_calls = 0

    async def ready(self) -> bool:
        self.health_calls += 1
        return self.up


class _Core:
    """What keep_warm uses of GatewayCore: the two clients, the popular items, recommend."""

    def __init__(self, retrieval_up: bool, ranking_up: bool) -> None:
        self.retrieval, self.ranking = _Dep(retrieval_up), _Dep(ranking_up)
        self.popular = type("P", (), {"items": [{"item_id": 7}, {"item_id": 8}]})()
        self.asked: list[RecommendationRequest] = []

    async def recommend(self, req: RecommendationRequest, request_id: Any) -> Recommendations:
        self.asked.append(req)
        degraded = [] if self.ranking.up else ["ranking"]
        return Recommendations.model_validate(
            {"user_id": None, "items": [], "model_version": "v", "degraded": degraded}
        )


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.005)


def test_ranking_down_does_not_hold_readiness_and_is_warmed_once_up() -> None:
    async def main() -> tuple[list[str], int, int, int, bool]:
        core, warmth = _Core(retrieval_up=False, ranking_up=False), Warmth()
        task = asyncio.create_task(keep_warm(cast(GatewayCore, core), warmth, every_s=0.01))
        checks = [warmth.check()]
        await asyncio.sleep(0.05)  # retrieval not ready: nothing sent, still warming
        checks.append(warmth.check())
        asked_while_down = len(core.asked)
        core.retrieval.up = True
        await _until(lambda: warmth.retrieval)
        checks.append(warmth.check())  # ready though ranking is down
        polls = core.ranking.health_calls
        await asyncio.sleep(0.05)  # ranking still down: only its health is polled
        asked_before_ranking = len(core.asked)
        assert core.ranking.health_calls > polls
        core.ranking.up = True
        await asyncio.wait_for(task, 5)  # one more recommendation, then the loop ends
        checks.append(warmth.check())
        return checks, asked_while_down, asked_before_ranking, len(core.asked), task.done()

    checks, while_down, before_ranking, total, done = asyncio.run(main())
    assert checks[0].startswith("warming") and checks[1].startswith("warming")
    assert checks[2] == "ok (ranking path not warmed yet: ranking down)"
    assert checks[3] == "ok"
    assert (while_down, before_ranking, total) == (0, 1, 2)
    assert done


def test_both_up_warms_with_one_recommendation_with_history() -> None:
    async def main() -> tuple[_Core, Warmth]:
        core, warmth = _Core(retrieval_up=True, ranking_up=True), Warmth()
        await asyncio.wait_for(keep_warm(cast(GatewayCore, core), warmth, every_s=0.01), 5)
        return core, warmth

    core, warmth = asyncio.run(main())
    assert warmth.check() == "ok"
    assert len(core.asked) == 1
    req = core.asked[0]
    assert req.recent_item_ids == ["7", "8"] and req.explain and req.user_id is None
