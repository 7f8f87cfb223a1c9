"""Offline full-ranking evaluation of :class:`~training.evaluation.base.Recommender` models.

Protocol (RecBole's full sort): every evaluated user's scores over all items –
or over ``data.candidate_items`` for a cold-items split – are ranked; the user's
train items are excluded (for ``stage="test"`` also their validation items);
users with no relevant item in the stage are skipped. Metrics are averaged over
the evaluated users. Tied scores are broken in a fixed, seeded random item order
(``data.seed``), so a model that gives many items the same score (say 0 for every
unseen item) is not rewarded for low item ids. Users are processed in batches so
that ml-25m fits in memory.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from shared.contracts.errors import ConfigError, DataError
from training.data.dataset import Dataset
from training.evaluation.base import EvalData, Recommender
from training.evaluation.metrics import (
    DEFAULT_KS,
    METRIC_NAMES,
    coverage_at_k,
    topk_indices,
    user_metrics,
)
from training.splits import Split

STAGES = ("valid", "test")


def stage_candidates(data: EvalData, stage: str) -> np.ndarray | None:
    """The item_idx ranked in a stage; None = all items.

    For the test stage this is ``data.candidate_items``. For the valid stage of
    a split with candidates (cold-items) it is their complement – the warm items
    the validation interactions are about – so tuning never ranks held-out items.

    Args:
        data: The indexed split.
        stage: ``valid`` or ``test``.

    Returns:
        [n_candidates] int64 sorted item_idx, or None.
    """
    if data.candidate_items is None:
        return None
    if stage == "test":
        return np.asarray(data.candidate_items, dtype=np.int64)
    return np.setdiff1d(np.arange(data.n_items, dtype=np.int64), data.candidate_items)


@dataclass
class UserMetrics:
    """Per-user results of one model on one stage.

    Attributes:
        users: [U] int64 user_idx of the evaluated users (ascending).
        metrics: ``recall@K`` etc. -> [U] float64, aligned to ``users``.
        coverage: ``coverage@K`` -> share of the candidates shown to anyone.
        n_candidates: Number of ranked candidate items.
        score_seconds: Time spent inside ``model.score``.
    """

    users: np.ndarray
    metrics: dict[str, np.ndarray]
    coverage: dict[str, float]
    n_candidates: int
    score_seconds: float

    def means(self) -> dict[str, float]:
        """Mean of every metric over the users, plus coverage, ``n_users``, ``n_candidates``."""
        out = {k: float(v.mean()) if len(v) else 0.0 for k, v in self.metrics.items()}
        out.update(self.coverage)
        out["n_users"] = float(len(self.users))
        out["n_candidates"] = float(self.n_candidates)
        return out


def evaluate_users(
    model: Recommender,
    data: EvalData,
    *,
    stage: str = "test",
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 1024,
    progress: bool = True,
    relevant: sp.csr_matrix | None = None,
    seen: sp.csr_matrix | None = None,
) -> UserMetrics:
    """Rank items for every user with relevant items in ``stage``; keep per-user metrics.

    Args:
        model: A fitted recommender.
        data: The indexed split.
        stage: ``valid`` (train items excluded) or ``test`` (train and valid excluded);
            also picks the candidate items (:func:`stage_candidates`).
        ks: Cut-offs.
        batch_size: Users scored per ``model.score`` call.
        progress: Show a tqdm bar on stderr.
        relevant: Override of the relevance matrix (the online protocol's second halves).
        seen: Override of the excluded items (the online protocol adds the events).

    Returns:
        The :class:`UserMetrics`.

    Raises:
        ConfigError: Unknown stage or bad cut-offs.
        DataError: The model returned scores of the wrong shape or NaN.
    """
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {list(STAGES)}, got {stage!r}.")
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ConfigError(f"ks must be positive cut-offs, got {ks}.")
    if relevant is None:
        relevant = data.test if stage == "test" else data.valid
    if seen is None:
        seen = data.train + data.valid if stage == "test" else data.train
    seen = sp.csr_matrix(seen)
    cand = stage_candidates(data, stage)
    # Rank the candidates in a fixed seeded random column order, so that tied scores
    # are broken at random (deterministically) instead of favouring low item ids.
    order = np.arange(data.n_items, dtype=np.int64) if cand is None else cand
    order = order[np.random.default_rng(data.seed).permutation(len(order))]
    relevant = sp.csr_matrix(relevant[:, order])
    seen = sp.csr_matrix(seen[:, order])
    n_cand = len(order)
    n_rel_all = np.diff(relevant.indptr)
    users = np.flatnonzero(n_rel_all > 0).astype(np.int64)
    kmax = max(ks)
    per_user: dict[str, list[np.ndarray]] = {
        f"{name}@{k}": [] for k in ks for name in METRIC_NAMES}
    shown = {k: np.zeros(n_cand, dtype=bool) for k in ks}
    score_seconds = 0.0
    bar = tqdm(
        total=len(users), desc=f"{model.name} [{stage}]", unit="user",
        file=sys.stderr, disable=not progress, leave=False,
    )
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        t0 = time.perf_counter()
        raw = model.score(batch)
        score_seconds += time.perf_counter() - t0
        scores = _checked_scores(raw, model.name, len(batch), data.n_items)[:, order]
        mask = seen[batch]
        rows = np.repeat(np.arange(len(batch)), np.diff(mask.indptr))
        scores[rows, mask.indices] = -np.inf
        top = topk_indices(scores, kmax)
        valid_rank = np.isfinite(np.take_along_axis(scores, top, axis=1))
        rel = relevant[batch].toarray() != 0
        hits = np.take_along_axis(rel, top, axis=1) & valid_rank
        for key, vals in user_metrics(hits, n_rel_all[batch], ks).items():
            per_user[key].append(vals)
        for k in ks:
            kk = min(k, top.shape[1])
            shown[k][top[:, :kk][valid_rank[:, :kk]]] = True
        bar.update(len(batch))
    bar.close()
    coverage = {}
    for k in ks:
        idx = np.flatnonzero(shown[k])[None, :]
        coverage[f"coverage@{k}"] = coverage_at_k(idx, idx.shape[1], n_cand)
    return UserMetrics(
        users=users,
        metrics={key: (np.concatenate(v) if v else np.zeros(0)) for key, v in per_user.items()},
        coverage=coverage, n_candidates=n_cand, score_seconds=score_seconds,
    )


def evaluate(
    model: Recommender,
    data: EvalData,
    *,
    stage: str = "test",
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 1024,
    progress: bool = True,
) -> dict[str, float]:
    """Mean metrics of :func:`evaluate_users` (the means do not depend on ``batch_size``).

    Returns:
        ``recall@K``, ``ndcg@K``, ``hit@K``, ``mrr@K``, ``coverage@K`` for each K,
        plus ``n_users`` (evaluated), ``n_candidates`` and ``score_seconds`` (time
        spent inside ``model.score``).
    """
    res = evaluate_users(model, data, stage=stage, ks=ks, batch_size=batch_size,
                         progress=progress)
    out = res.means()
    out["score_seconds"] = res.score_seconds
    return out


def _checked_scores(raw: Any, name: str, n_rows: int, n_items: int) -> np.ndarray:
    """A writable float32 copy of a model's scores, after shape and NaN checks."""
    scores = np.array(raw, dtype=np.float32)
    if scores.shape != (n_rows, n_items):
        raise DataError(
            f"model {name!r} returned scores of shape {scores.shape}; expected "
            f"({n_rows}, {n_items}) = [len(user_idx), n_items]. Fix its score() method."
        )
    if np.isnan(scores).any():
        raise DataError(
            f"model {name!r} returned NaN scores; score() must return finite floats "
            "(use a large negative number for items it cannot score)."
        )
    return scores


def _unique_names(models: Iterable[Recommender]) -> list[tuple[str, Recommender]]:
    out: list[tuple[str, Recommender]] = []
    used: set[str] = set()
    for m in models:
        name, i = m.name, 2
        while name in used:
            name, i = f"{m.name}-{i}", i + 1
        used.add(name)
        out.append((name, m))
    return out


def run_models(
    models: Iterable[Recommender],
    data: EvalData,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    stages: Sequence[str] = STAGES,
    batch_size: int = 1024,
    dataset: Dataset | None = None,
    split: Split | None = None,
    progress: bool = True,
    per_user: dict[str, dict[str, UserMetrics]] | None = None,
    after_fit: Callable[[str, Recommender], None] | None = None,
) -> dict[str, Any]:
    """Fit every model on ``data`` and evaluate it on each stage.

    Each model is fitted once (reading ``train`` and ``valid`` only) and its test
    metrics are computed once, after every choice it makes is fixed.

    Args:
        models: Unfitted recommenders.
        data: The indexed split.
        ks: Cut-offs.
        stages: Stages to evaluate (``valid`` and/or ``test``).
        batch_size: Users per score call.
        dataset: The source dataset, to record its name, sha256 and size.
        split: The split, to record its parameters and counts.
        progress: Show tqdm bars on stderr.
        per_user: When given, filled with ``{model name: {stage: UserMetrics}}``.
        after_fit: Called with (name, fitted model) after the model's stages are
            evaluated (the online protocol runs there, while the model is in memory).

    Returns:
        A JSON-ready report: ``dataset``, ``split``, ``ks``, ``models`` (per model
        name: ``fit_seconds``, ``score_seconds`` per stage, ``hyperparameters``
        and one metrics dict per stage). See :mod:`training.evaluation.report`.
    """
    report: dict[str, Any] = {
        "dataset": {"name": data.dataset_name},
        "split": {"kind": data.split, "seed": data.seed},
        "eval_data": {"n_users": data.n_users, "n_items": data.n_items,
                      "n_candidates": (data.n_items if data.candidate_items is None
                                       else len(data.candidate_items))},
        "ks": [int(k) for k in ks],
        "models": {},
    }
    if dataset is not None:
        report["dataset"].update(sha256=dataset.source_sha256, source=dataset.source_path,
                                 summary=_jsonable(dataset.summary()))
    if split is not None:
        report["split"]["params"] = _jsonable(split.params)
    for name, model in _unique_names(models):
        t0 = time.perf_counter()
        model.fit(data)
        entry: dict[str, Any] = {"fit_seconds": time.perf_counter() - t0, "score_seconds": {}}
        for stage in stages:
            res = evaluate_users(model, data, stage=stage, ks=ks, batch_size=batch_size,
                                 progress=progress)
            entry["score_seconds"][stage] = res.score_seconds
            entry[stage] = res.means()
            if per_user is not None:
                per_user.setdefault(name, {})[stage] = res
        entry["hyperparameters"] = _jsonable(dict(getattr(model, "hyperparameters", {}) or {}))
        report["models"][name] = entry
        if after_fit is not None:
            after_fit(name, model)
    return report


def _jsonable(obj: Any) -> Any:
    """Numpy scalars/arrays and tuples to plain JSON types, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
