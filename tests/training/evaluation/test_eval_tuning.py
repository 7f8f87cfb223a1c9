"""grid_search widens an axis whose end wins, and records every point tried."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from training.evaluation import tuning
from training.evaluation.base import EvalData
from training.evaluation.tuning import geometric, grid_search


class Point:
    """A stand-in scorer whose validation score is a known function of its point."""

    name = "point"

    def __init__(self, point: dict[str, Any]) -> None:
        self.point = point

    def fit(self, data: EvalData) -> None:
        """Nothing to fit."""

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        return np.zeros((len(user_idx), 1), dtype=np.float32)


@pytest.fixture
def peaked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation NDCG@10 peaks at k = 16 and shrink = 0 (the lower bound)."""

    def fake_evaluate(model: Point, data: Any, **_: Any) -> dict[str, float]:
        k, shrink = model.point["k"], model.point.get("shrink", 0.0)
        return {"ndcg@10": 1.0 - (math.log2(k) - 4.0) ** 2 / 100 - shrink / 1000}

    monkeypatch.setattr(tuning, "evaluate", fake_evaluate)


@pytest.mark.usefixtures("peaked")
def test_an_end_pick_is_widened_until_interior() -> None:
    result, model = grid_search({"k": (2, 4), "shrink": (0.0, 10.0)}, Point, None,  # type: ignore[arg-type]
                                widen={"k": geometric(2.0, lower=1, integer=True),
                                       "shrink": geometric(4.0, lower=1.0)})
    assert result.best == {"k": 16, "shrink": 0.0}
    assert isinstance(model, Point) and model.point == result.best
    tried_k = sorted({p["k"] for p, _ in result.tried})
    assert tried_k == [2, 4, 8, 16, 32]  # widened past the peak, so 16 is interior
    assert result.at_end == []  # shrink=0 is at its natural bound, not an open end
    assert all(score <= result.best_score for _, score in result.tried)
    d = result.to_dict()
    assert d["chosen"] == {"k": 16, "shrink": 0.0} and len(d["tried"]) == len(result.tried)


@pytest.mark.usefixtures("peaked")
def test_round_limit_reports_an_axis_still_at_its_end() -> None:
    result, _ = grid_search({"k": (1, 2)}, Point, None,  # type: ignore[arg-type]
                            widen={"k": geometric(2.0, integer=True)}, max_rounds=1)
    assert result.best == {"k": 4}
    assert result.at_end == ["k"]


@pytest.mark.usefixtures("peaked")
def test_axes_without_widen_are_left_alone() -> None:
    result, _ = grid_search({"k": (2, 4)}, Point, None)  # type: ignore[arg-type]
    assert result.best == {"k": 4}
    assert sorted(p["k"] for p, _ in result.tried) == [2, 4]
