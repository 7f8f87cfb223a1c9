"""Validation grid search whose chosen values never sit at an end of the grid.

:func:`grid_search` scores every point of a product grid on the validation stage
(NDCG@10; ``data.test`` is never read). When the best point sits at the end of
an axis and that axis can be widened (``widen``), the axis gets one more value
beyond that end, evaluated with the other axes at their best values; this repeats
until the best point is interior (or at a natural bound such as ``shrink = 0``)
or ``max_rounds`` is reached. Every point tried and its validation score land in
the model's ``hyperparameters`` (and so in the report).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from training.evaluation.base import EvalData, Recommender
from training.evaluation.harness import evaluate

TUNE_METRIC = "ndcg@10"

#: Given an axis' sorted values and which end was picked (``low``/``high``),
#: the next value beyond it, or None when the axis cannot grow that way.
Widen = Callable[[Sequence[Any], str], Any | None]


def geometric(factor: float, lower: float | None = None, upper: float | None = None,
              integer: bool = False) -> Widen:
    """A :data:`Widen` that multiplies (high end) or divides (low end) by ``factor``.

    The new value is clipped to ``[lower, upper]``; an end already at its bound
    is a natural end (None), not an open one.
    """

    def widen(values: Sequence[Any], end: str) -> Any | None:
        v = values[0] / factor if end == "low" else values[-1] * factor
        if lower is not None:
            v = max(v, lower)
        if upper is not None:
            v = min(v, upper)
        if integer:
            v = round(v)
        return None if v in values else v

    return widen


@dataclass
class SearchResult:
    """What :func:`grid_search` tried and picked."""

    best: dict[str, Any]
    best_score: float
    tried: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    at_end: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: chosen values, every point with its validation NDCG@10."""
        return {
            "chosen": self.best,
            f"valid_{TUNE_METRIC}_chosen": self.best_score,
            "tried": [{**p, f"valid_{TUNE_METRIC}": s} for p, s in self.tried],
            "axes_still_at_an_end": self.at_end,
        }


def grid_search(
    axes: Mapping[str, Sequence[Any]],
    make: Callable[[dict[str, Any]], Recommender],
    data: EvalData,
    *,
    widen: Mapping[str, Widen] | None = None,
    max_rounds: int = 4,
    desc: str = "tuning on valid",
) -> tuple[SearchResult, Recommender]:
    """Best point of the grid on validation NDCG@10, widening axes whose end wins.

    Args:
        axes: Axis name -> candidate values (sorted ascending for widenable axes).
        make: Point -> a fitted scorer (only ``train`` may be read to build it).
        data: The indexed split.
        widen: Axis name -> :data:`Widen`; axes not listed are not widened.
        max_rounds: Widening rounds at most.
        desc: Progress-bar label.

    Returns:
        (the :class:`SearchResult`, the best point's scorer).
    """
    widen = dict(widen or {})
    values = {k: sorted(v) if k in widen else list(v) for k, v in axes.items()}
    scores: dict[tuple[Any, ...], float] = {}
    names = list(values)
    best_key: tuple[Any, ...] | None = None
    best_model: Recommender | None = None

    def run(points: list[tuple[Any, ...]]) -> None:
        nonlocal best_key, best_model
        for key in tqdm(points, desc=desc, file=sys.stderr, leave=False):
            if key in scores:
                continue
            model = make(dict(zip(names, key, strict=True)))
            val = evaluate(model, data, stage="valid", ks=(10,), progress=False)[TUNE_METRIC]
            scores[key] = val
            if best_key is None or val > scores[best_key]:
                best_key, best_model = key, model
            else:
                del model

    run(list(itertools.product(*(values[n] for n in names))))
    at_end: list[str] = []
    for _ in range(max_rounds):
        assert best_key is not None
        new_points = []
        at_end = []
        for j, name in enumerate(names):
            vals = values[name]
            if name not in widen or len(vals) < 2:
                continue
            for end, edge in (("low", vals[0]), ("high", vals[-1])):
                if best_key[j] != edge:
                    continue
                nxt = widen[name](vals, end)
                if nxt is None:
                    continue
                at_end.append(name)
                values[name] = sorted([*vals, nxt])
                new_points.append((*best_key[:j], nxt, *best_key[j + 1:]))
        if not new_points:
            break
        run(new_points)
    else:
        assert best_key is not None
        at_end = [n for j, n in enumerate(names) if n in widen and len(values[n]) > 1
                  and best_key[j] in (values[n][0], values[n][-1])
                  and widen[n](values[n], "low" if best_key[j] == values[n][0] else "high")
                  is not None]
    assert best_key is not None and best_model is not None
    tried = [(dict(zip(names, k, strict=True)), v) for k, v in scores.items()]
    result = SearchResult(dict(zip(names, best_key, strict=True)), scores[best_key], tried,
                          at_end)
    return result, best_model
